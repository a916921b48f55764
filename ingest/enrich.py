"""From `Incoming` (or a native event, which reads as one) to the `Event` envelope: validation rules
per type, normalisation, and enrichment (times with clock-skew correction, message ids, user agent,
bot flag, page, campaign and click ids, IP anonymisation, country). Pure CPU work: no I/O except an
optional GeoIP database read."""

from __future__ import annotations

import datetime as dt
import ipaddress
import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TypedDict
from urllib.parse import parse_qs, urlsplit

import ua_parser
import uuid_utils
from crawlerdetect import CrawlerDetect

from adtivity.settings import Settings
from ingest.geo import GeoIp
from ingest.wire import TYPE_ALIASES, AsIncoming
from models import events as ev
from models.events import Event

EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
EVM_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
CLICK_IDS = ("gclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id", "dclid", "wbraid", "gbraid", "yclid")
UTM_FIELDS = ("source", "medium", "campaign", "term", "content")
REQUIRED = {
    ev.TRACK: ("name",),
    ev.ALIAS: ("previous_id", "user_id"),
    ev.GROUP: ("group_id",),
    ev.WALLET_CONNECT: ("wallet_address",),
    ev.CHAIN_CHANGED: ("chain_id",),
    ev.TRANSACTION: ("tx_hash", "chain_id"),
    ev.PAYMENT: ("payment_id", "status"),
}
STATUS_RULES: dict[str, tuple[tuple[str, ...], str | None]] = {
    ev.SIGNATURE: (ev.SIGNATURE_STATUSES, "requested"),
    ev.TRANSACTION: (ev.TRANSACTION_STATUSES, "submitted"),
    ev.PAYMENT: (ev.PAYMENT_STATUSES, None),
}


_onchain_values = operator.attrgetter(*ev.OnChainAndPayment.__struct_fields__)
KNOWN_TYPES = {**{kind: kind for kind in ev.EVENT_TYPES}, **TYPE_ALIASES}


class AgentFields(TypedDict):
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    is_bot: bool


class PageFields(TypedDict):
    page_url: str
    page_path: str
    page_title: str
    referrer: str
    referrer_domain: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str
    click_id_type: str
    click_id: str


class OnChainFields(TypedDict, total=False):
    """The web3 and payment fields: all of them, or none for an event that has none."""

    wallet_address: str
    chain_id: str
    tx_hash: str
    tx_from: str
    tx_to: str
    contract_address: str
    tx_value: str
    token: str
    status: str
    payment_id: str
    amount: str
    currency: str
    payment_method: str


class Rejected(ValueError):
    """This event cannot be accepted; the message says why (it goes back to the client)."""


@dataclass(frozen=True)
class RequestInfo:
    """What the request tells about all of its events."""

    company_id: str
    received_at: dt.datetime
    sent_at: dt.datetime | None
    user_agent: str
    ip: str
    country: str
    request_id: str


@dataclass(frozen=True)
class Page:
    """What a page URL says: its path, campaign fields and click id."""

    path: str
    utm: dict[str, str]  # every one of UTM_FIELDS, "" when the URL has none
    click_id_type: str
    click_id: str


@lru_cache(maxsize=20_000)
def describe_page(url: str) -> Page:
    parts = urlsplit(url)
    query = parse_qs(parts.query) if parts.query else {}
    click_type = next((name for name in CLICK_IDS if name in query), "")
    return Page(
        path=parts.path,
        utm={f: query[f"utm_{f}"][0] if f"utm_{f}" in query else "" for f in UTM_FIELDS},
        click_id_type=click_type,
        click_id=query[click_type][0] if click_type else "",
    )


@lru_cache(maxsize=20_000)
def domain_of(url: str) -> str:
    return urlsplit(url).hostname or ""


NO_PAGE = Page("", dict.fromkeys(UTM_FIELDS, ""), "", "")


_crawlers = CrawlerDetect()
NO_AGENT = AgentFields(browser="", browser_version="", os="", os_version="", device="", is_bot=False)
# HTTP libraries a backend sends events with: a server-side sender, not a crawler. Its events count
# (device "Server", the library as the browser); crawler lists flag most of these names as bots.
HTTP_LIBRARY = re.compile(
    r"^(python-requests|python-urllib3|Python-urllib|python-httpx|aiohttp|Go-http-client|okhttp|node-fetch|"
    r"node|undici|axios|got|curl|Wget|Java|Apache-HttpClient|libwww-perl|Ruby|Faraday|Guzzle|GuzzleHttp|"
    r"RestSharp|Dart|reqwest|Deno|Bun|PostmanRuntime|insomnia|HTTPie)(?=[/ ]|$)",
    re.IGNORECASE,
)
SERVER_DEVICE = "Server"


def agent_fields(user_agent: str) -> AgentFields:
    """What the user agent says, as the envelope's fields (cached per user agent by the Enricher)."""
    if not user_agent:
        return NO_AGENT
    library = HTTP_LIBRARY.match(user_agent)
    if library:
        return AgentFields(
            browser=library[1], browser_version="", os="", os_version="", device=SERVER_DEVICE, is_bot=False
        )
    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent
    system = parsed.os
    device = parsed.device
    is_bot = (device is not None and device.family == "Spider") or _crawlers.isCrawler(user_agent)
    return AgentFields(
        browser=browser.family if browser else "",
        browser_version=".".join(p for p in (browser.major, browser.minor) if p) if browser else "",
        os=system.family if system else "",
        os_version=".".join(p for p in (system.major, system.minor) if p) if system else "",
        device=device.family if device else "",
        is_bot=bool(is_bot),
    )


@lru_cache(maxsize=8192)
def anonymise_ip(ip: str) -> str:
    """IPv4 keeps its /24, IPv6 its /48; anything unparsable is dropped."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


@lru_cache(maxsize=50_000)
def _normalised(value: str) -> str:
    return value.lower() if EVM_ADDRESS.match(value) or EVM_HASH.match(value) else value


def normalise_address(value: str) -> str:
    """EVM addresses and hashes are case-insensitive: lower case. Others (Solana) are kept as given."""
    return _normalised(value) if value else ""


def decimal_text(
    value: str, field: str, *, max_integer_digits: int | None = None, max_fraction_digits: int | None = None
) -> str:
    """A plain decimal string (no exponent), checked against the column it must fit."""
    if not value:
        return ""
    if not DECIMAL.match(value):
        try:
            value = format(Decimal(value), "f")
        except InvalidOperation:
            raise Rejected(f"{field} must be a decimal number") from None
        if not DECIMAL.match(value):
            raise Rejected(f"{field} must be a decimal number")
    integer, _, fraction = value.lstrip("-").partition(".")
    if max_integer_digits is not None and len(integer.lstrip("0")) > max_integer_digits:
        raise Rejected(f"{field} may have at most {max_integer_digits} digits before the point")
    if max_fraction_digits is not None and len(fraction.rstrip("0")) > max_fraction_digits:
        raise Rejected(f"{field} may have at most {max_fraction_digits} digits after the point")
    return value


def text_or_empty(value: object) -> str:
    """A string as it is; anything else (a number, an object, null) as ""."""
    return value if isinstance(value, str) else ""


def aware(moment: dt.datetime) -> dt.datetime:
    """A time without an offset is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def event_type(given: str) -> str:
    """The event's type, aliases and case folded; an unknown one is rejected."""
    kind = KNOWN_TYPES.get(given)
    if kind is None:
        lowered = given.strip().lower()
        kind = TYPE_ALIASES.get(lowered, lowered)
        if kind not in ev.EVENT_TYPES:
            raise Rejected(f"unknown event type {given!r}; one of: {', '.join(ev.EVENT_TYPES)}")
    return kind


def page_fields(kind: str, incoming: AsIncoming) -> PageFields:
    """The page (the context's, or a page event's properties), its campaign fields (the SDK's
    campaign wins over the URL's UTM parameters), click id and referrer."""
    context = incoming.context
    page = context.get("page")
    if not isinstance(page, dict):
        page = {}
    if kind == ev.PAGE and not page:
        page = incoming.properties
    page_url = text_or_empty(page.get("url"))
    described = describe_page(page_url) if page_url else NO_PAGE
    utm = described.utm
    campaign = context.get("campaign")
    if isinstance(campaign, dict) and campaign:
        utm = {f: text_or_empty(campaign.get("name" if f == "campaign" else f)) or utm[f] for f in UTM_FIELDS}
    referrer = text_or_empty(page.get("referrer"))
    return {
        "page_url": page_url,
        "page_path": text_or_empty(page.get("path")) or described.path,
        "page_title": text_or_empty(page.get("title")),
        "referrer": referrer,
        "referrer_domain": domain_of(referrer) if referrer else "",
        "utm_source": utm["source"],
        "utm_medium": utm["medium"],
        "utm_campaign": utm["campaign"],
        "utm_term": utm["term"],
        "utm_content": utm["content"],
        "click_id_type": described.click_id_type,
        "click_id": described.click_id,
    }


def user_agent_of(incoming: AsIncoming, request: RequestInfo) -> str:
    """The context's user agent; a browser's request's own when the event came straight from one."""
    context = incoming.context
    user_agent = text_or_empty(context.get("userAgent")) or text_or_empty(context.get("user_agent"))
    if not user_agent and incoming.from_browser:
        return request.user_agent
    return user_agent


def address_of(incoming: AsIncoming, request: RequestInfo) -> str:
    """The event's IP address: its own, its context's, or a browser's request's."""
    return incoming.ip or text_or_empty(incoming.context.get("ip")) or (request.ip if incoming.from_browser else "")


class Enricher:
    def __init__(self, settings: Settings, geoip: GeoIp | None = None) -> None:
        self.settings = settings
        self.geoip = geoip
        self.min_age = -dt.timedelta(seconds=settings.ingest_max_future_seconds)  # in the future by at most
        self.max_age = dt.timedelta(days=settings.ingest_max_age_days)
        self.agent_fields = lru_cache(maxsize=settings.user_agent_cache_size)(agent_fields)
        agent_fields("Mozilla/5.0")  # ua-parser builds its parser on first use: not in a request

    def build(self, incoming: AsIncoming, request: RequestInfo) -> Event:
        """The enrichment steps in order: type, required fields, web3 and payment fields, time, page
        and campaign, user agent, address and place."""
        kind = event_type(incoming.type)
        self.check_required(kind, incoming)
        onchain = (
            self.onchain_and_payment(kind, incoming) if kind in STATUS_RULES or any(_onchain_values(incoming)) else {}
        )
        event_time, clamped = self.event_time(incoming, request)
        user_agent = user_agent_of(incoming, request)
        ip = address_of(incoming, request)
        country, region, city = self.place(incoming, request, ip)
        return Event(
            company_id=request.company_id,
            message_id=incoming.message_id or str(uuid_utils.uuid7()),
            type=kind,
            event_time=event_time,
            received_at=request.received_at,
            sent_at=incoming.sent_at or request.sent_at,
            time_clamped=clamped,
            name=incoming.name,
            user_id=incoming.user_id,
            anonymous_id=incoming.anonymous_id,
            session_id=incoming.session_id,
            group_id=incoming.group_id,
            previous_id=incoming.previous_id,
            properties=incoming.properties,
            traits=incoming.traits,
            context=incoming.context,
            user_agent=user_agent,
            locale=text_or_empty(incoming.context.get("locale")),
            ip=anonymise_ip(ip) if self.settings.anonymise_ip and ip else ip,
            country=country,
            region=region,
            city=city,
            request_id=request.request_id,
            **page_fields(kind, incoming),
            **self.agent_fields(user_agent),
            **onchain,
        )

    @staticmethod
    def check_required(kind: str, incoming: AsIncoming) -> None:
        if not (incoming.user_id or incoming.anonymous_id):
            raise Rejected("user_id or anonymous_id is required")
        required = REQUIRED.get(kind)
        if required and not all(map(incoming.__getattribute__, required)):
            missing = [field for field in required if not getattr(incoming, field)]
            raise Rejected(f"a {kind} event needs {' and '.join(missing)}")

    @classmethod
    def onchain_and_payment(cls, kind: str, incoming: AsIncoming) -> OnChainFields:
        """The event's web3 and payment fields, normalised and checked (an event of most types has none,
        and skips this)."""
        return {
            "wallet_address": normalise_address(incoming.wallet_address),
            "chain_id": incoming.chain_id,
            "tx_hash": normalise_address(incoming.tx_hash),
            "tx_from": normalise_address(incoming.tx_from),
            "tx_to": normalise_address(incoming.tx_to),
            "contract_address": normalise_address(incoming.contract_address),
            "tx_value": decimal_text(incoming.tx_value, "value"),
            "token": incoming.token,
            "status": cls.check_status(kind, incoming.status.strip().lower()),
            "payment_id": incoming.payment_id,
            "amount": decimal_text(incoming.amount, "amount", max_integer_digits=29, max_fraction_digits=9),
            "currency": incoming.currency.upper(),
            "payment_method": incoming.payment_method,
        }

    @staticmethod
    def check_status(kind: str, status: str) -> str:
        if kind not in STATUS_RULES:
            return status
        allowed, default = STATUS_RULES[kind]
        status = status or default or ""
        if status not in allowed:
            raise Rejected(f"a {kind} status is one of: {', '.join(allowed)}")
        return status

    def event_time(self, incoming: AsIncoming, request: RequestInfo) -> tuple[dt.datetime, bool]:
        """received_at - (sent_at - timestamp) when the client says when it sent; clamped if in the future."""
        received = request.received_at
        if incoming.timestamp is None:
            return received, False
        timestamp = aware(incoming.timestamp)
        sent_at = incoming.sent_at or request.sent_at
        age = aware(sent_at) - timestamp if sent_at is not None else received - timestamp  # before receipt
        if age < self.min_age:
            return received, True
        if age > self.max_age:
            raise Rejected(f"the event is older than {self.max_age.days} days; send it through the import path")
        return received - age, False

    def place(self, incoming: AsIncoming, request: RequestInfo, ip: str) -> tuple[str, str, str]:
        if incoming.country:
            return incoming.country.upper(), incoming.region, incoming.city
        if request.country:
            return request.country.upper(), "", ""
        if self.geoip is not None and ip:
            return self.geoip.locate(ip)
        return "", "", ""
