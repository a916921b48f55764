"""The wire formats SDKs send, as msgspec structs, and their mapping onto one `Incoming` shape.

- native (`POST /v1/events`): snake_case, every event type including web3 and payments;
- Segment's HTTP Tracking API (`/v1/track`, `/v1/batch`, ...): camelCase, `integrations` ignored;
- the original Adtivity SDK (`POST /sdk/event`): `eventName`, `transaction_hash`, `ip_address`, ...

Each wire struct is lenient about unknown fields (SDKs add their own) and strict about the types
of the fields it knows. `Incoming` is what validation and enrichment work on; a decoded native event
reads as one as it is (`AsIncoming`), the other formats map onto it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Protocol

import msgspec

from models import events as ev

Short = Annotated[str, msgspec.Meta(max_length=256)]
Name = Annotated[str, msgspec.Meta(max_length=512)]
Id = Annotated[str, msgspec.Meta(max_length=256)] | int
Number = Annotated[str, msgspec.Meta(max_length=100)] | int | float
JsonObject = dict[str, Any]

TYPE_ALIASES = {
    "pageview": ev.PAGE,
    "page_view": ev.PAGE,
    "screen_view": ev.SCREEN,
    "event": ev.TRACK,
    "wallet_connected": ev.WALLET_CONNECT,
    "connect_wallet": ev.WALLET_CONNECT,
    "wallet_disconnected": ev.WALLET_DISCONNECT,
    "tx": ev.TRANSACTION,
    "chain_change": ev.CHAIN_CHANGED,
}


class Incoming(ev.OnChainAndPayment, kw_only=True):
    """One event as the client described it, before validation and enrichment."""

    type: str
    name: str = ""
    message_id: str = ""
    user_id: str = ""
    anonymous_id: str = ""
    session_id: str = ""
    group_id: str = ""
    previous_id: str = ""
    timestamp: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    properties: JsonObject = {}
    traits: JsonObject = {}
    context: JsonObject = {}
    ip: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    # Only formats sent straight from browsers may fall back on the request's User-Agent and address.
    from_browser: bool = True


def stringified(value: object) -> str:
    """A value as text: null is "", a number its digits."""
    return "" if value is None else str(value)


class NativeEvent(
    msgspec.Struct,
    kw_only=True,
    rename={"tx_from": "from", "tx_to": "to", "tx_value": "value", "payment_method": "method"},
):
    """A native event. Decoded, it reads as an `Incoming` without a copy: null becomes "" (or {}) and
    numbers become text in `__post_init__`, and what the native format cannot say (ip, place, whether
    it came from a browser) are class attributes."""

    type: Short
    name: Name | None = ""
    message_id: Short | None = ""
    user_id: Id | None = ""
    anonymous_id: Id | None = ""
    session_id: Id | None = ""
    group_id: Id | None = ""
    previous_id: Id | None = ""
    timestamp: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    properties: JsonObject | None = {}
    traits: JsonObject | None = {}
    context: JsonObject | None = {}
    wallet_address: Short | None = ""
    chain_id: Id | None = ""
    tx_hash: Short | None = ""
    tx_from: Short | None = ""
    tx_to: Short | None = ""
    contract_address: Short | None = ""
    tx_value: Number | None = ""
    token: Short | None = ""
    status: Short | None = ""
    payment_id: Short | None = ""
    amount: Number | None = ""
    currency: Short | None = ""
    payment_method: Short | None = ""
    ip: ClassVar[str] = ""
    country: ClassVar[str] = ""
    region: ClassVar[str] = ""
    city: ClassVar[str] = ""
    from_browser: ClassVar[bool] = True

    def __post_init__(self) -> None:
        # Spelled out, not looped (nor `None in (...)`, which compares): this runs for every event
        # ingested, and nearly always finds nothing.
        if (
            self.name is None
            or self.message_id is None
            or self.wallet_address is None
            or self.tx_hash is None
            or self.tx_from is None
            or self.tx_to is None
            or self.contract_address is None
            or self.token is None
            or self.status is None
            or self.payment_id is None
            or self.currency is None
            or self.payment_method is None
            or self.properties is None
            or self.traits is None
            or self.context is None
            or self.user_id.__class__ is not str
            or self.anonymous_id.__class__ is not str
            or self.session_id.__class__ is not str
            or self.group_id.__class__ is not str
            or self.previous_id.__class__ is not str
            or self.chain_id.__class__ is not str
            or self.tx_value.__class__ is not str
            or self.amount.__class__ is not str
        ):
            self.to_incoming_types()

    def to_incoming_types(self) -> None:
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if field in ("timestamp", "sent_at") or isinstance(value, (str, dict)):
                continue
            if value is None:
                setattr(self, field, {} if field in ("properties", "traits", "context") else "")
            else:
                setattr(self, field, str(value))


class AsIncoming(Protocol):
    """What validation and enrichment read of an event: an `Incoming`, or a decoded `NativeEvent`
    (whose `__post_init__` makes every field read as `Incoming`'s)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def anonymous_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def group_id(self) -> str: ...
    @property
    def previous_id(self) -> str: ...
    @property
    def timestamp(self) -> dt.datetime | None: ...
    @property
    def sent_at(self) -> dt.datetime | None: ...
    @property
    def properties(self) -> JsonObject: ...
    @property
    def traits(self) -> JsonObject: ...
    @property
    def context(self) -> JsonObject: ...
    @property
    def wallet_address(self) -> str: ...
    @property
    def chain_id(self) -> str: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def tx_from(self) -> str: ...
    @property
    def tx_to(self) -> str: ...
    @property
    def contract_address(self) -> str: ...
    @property
    def tx_value(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def payment_id(self) -> str: ...
    @property
    def amount(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def payment_method(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def from_browser(self) -> bool: ...


class SegmentMessage(msgspec.Struct, kw_only=True, rename="camel"):
    """Segment's spec: https://segment.com/docs/connections/spec/ (common fields, track, page, ...)."""

    type: Short | None = None
    message_id: Short | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    group_id: Id | None = None
    previous_id: Id | None = None
    event: Name | None = None
    name: Name | None = None
    timestamp: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    properties: JsonObject | None = None
    traits: JsonObject | None = None
    context: JsonObject | None = None
    write_key: Short | None = None

    def incoming(self, message_type: str | None) -> Incoming:
        context = self.context or {}
        kind = message_type or self.type or ""
        return Incoming(
            type=kind,
            name=stringified(self.event if kind == ev.TRACK else self.name),
            message_id=stringified(self.message_id),
            user_id=stringified(self.user_id),
            anonymous_id=stringified(self.anonymous_id),
            group_id=stringified(self.group_id),
            previous_id=stringified(self.previous_id),
            timestamp=self.timestamp,
            sent_at=self.sent_at,
            properties=self.properties or {},
            traits=self.traits or context.get("traits") or {},
            context=context,
            ip=stringified(context.get("ip")),
            from_browser=False,
        )


class SegmentBatch(msgspec.Struct, kw_only=True, rename="camel"):
    batch: list[msgspec.Raw]
    sent_at: dt.datetime | None = None
    context: JsonObject | None = None
    write_key: Short | None = None


class LegacyEvent(msgspec.Struct, kw_only=True):
    type: Short | None = None
    eventName: Name | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    properties: JsonObject | None = None
    timestamp: dt.datetime | None = None
    wallet_address: Short | None = None
    chain_id: Id | None = None
    transaction_hash: Short | None = None
    contract_address: Short | None = None
    country: Short | None = None
    region: Short | None = None
    city: Short | None = None
    ip_address: Short | None = None

    def incoming(self) -> Incoming:
        properties = self.properties or {}
        return Incoming(
            type=self.type or ev.TRACK,
            name=stringified(self.eventName),
            user_id=stringified(self.user_id),
            anonymous_id=stringified(self.anonymous_id),
            session_id=stringified(self.session_id),
            timestamp=self.timestamp,
            properties=properties,
            wallet_address=stringified(self.wallet_address),
            chain_id=stringified(self.chain_id),
            tx_hash=stringified(self.transaction_hash),
            contract_address=stringified(self.contract_address),
            tx_value=stringified(properties.get("value", "")),
            status=stringified(properties.get("status", "")),
            country=stringified(self.country),
            region=stringified(self.region),
            city=stringified(self.city),
            ip=stringified(self.ip_address),
        )


class NativeBatch(msgspec.Struct, kw_only=True):
    batch: list[msgspec.Raw]
    sent_at: dt.datetime | None = None
    write_key: Short | None = None  # for navigator.sendBeacon, which cannot send an Authorization header
