"""The wire formats SDKs send, as msgspec structs, and their mapping onto one `Incoming` shape.

- native (`POST /v1/events`): snake_case, every event type including web3 and payments;
- Segment's HTTP Tracking API (`/v1/track`, `/v1/batch`, ...): camelCase, `integrations` ignored;
- the original Adtivity SDK (`POST /sdk/event`): `eventName`, `transaction_hash`, `ip_address`, ...

Each wire struct is lenient about unknown fields (SDKs add their own) and strict about the types
of the fields it knows. `Incoming` is what validation and enrichment work on.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from models import events as ev

Short = Annotated[str, msgspec.Meta(max_length=256)]
Name = Annotated[str, msgspec.Meta(max_length=512)]
Id = Annotated[str, msgspec.Meta(max_length=256)] | int
Number = Annotated[str, msgspec.Meta(max_length=100)] | int | float
JsonObject = dict[str, Any]

TYPE_ALIASES = {
    "pageview": ev.PAGE, "page_view": ev.PAGE, "screen_view": ev.SCREEN, "event": ev.TRACK,
    "wallet_connected": ev.WALLET_CONNECT, "connect_wallet": ev.WALLET_CONNECT,
    "wallet_disconnected": ev.WALLET_DISCONNECT, "tx": ev.TRANSACTION, "chain_change": ev.CHAIN_CHANGED,
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


def text(value) -> str:
    return "" if value is None else str(value)


class NativeEvent(msgspec.Struct, kw_only=True, rename={"tx_from": "from", "tx_to": "to", "tx_value": "value"}):
    type: Short
    name: Name | None = None
    message_id: Short | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    group_id: Id | None = None
    previous_id: Id | None = None
    timestamp: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    properties: JsonObject | None = None
    traits: JsonObject | None = None
    context: JsonObject | None = None
    wallet_address: Short | None = None
    chain_id: Id | None = None
    tx_hash: Short | None = None
    tx_from: Short | None = None
    tx_to: Short | None = None
    contract_address: Short | None = None
    tx_value: Number | None = None
    token: Short | None = None
    status: Short | None = None
    payment_id: Short | None = None
    amount: Number | None = None
    currency: Short | None = None
    method: Short | None = None

    def incoming(self) -> Incoming:
        # `or ""` for the fields that are strings or null; text() for those that may be numbers too.
        return Incoming(
            type=self.type, name=self.name or "", message_id=self.message_id or "", user_id=text(self.user_id),
            anonymous_id=text(self.anonymous_id), session_id=text(self.session_id), group_id=text(self.group_id),
            previous_id=text(self.previous_id), timestamp=self.timestamp, sent_at=self.sent_at,
            properties=self.properties or {}, traits=self.traits or {}, context=self.context or {},
            wallet_address=self.wallet_address or "", chain_id=text(self.chain_id), tx_hash=self.tx_hash or "",
            tx_from=self.tx_from or "", tx_to=self.tx_to or "", contract_address=self.contract_address or "",
            tx_value=text(self.tx_value), token=self.token or "", status=self.status or "",
            payment_id=self.payment_id or "", amount=text(self.amount), currency=self.currency or "",
            payment_method=self.method or "",
        )


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
            type=kind, name=text(self.event if kind == ev.TRACK else self.name), message_id=text(self.message_id),
            user_id=text(self.user_id), anonymous_id=text(self.anonymous_id), group_id=text(self.group_id),
            previous_id=text(self.previous_id), timestamp=self.timestamp, sent_at=self.sent_at,
            properties=self.properties or {}, traits=self.traits or context.get("traits") or {}, context=context,
            ip=text(context.get("ip")), from_browser=False,
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
            type=self.type or ev.TRACK, name=text(self.eventName), user_id=text(self.user_id),
            anonymous_id=text(self.anonymous_id), session_id=text(self.session_id), timestamp=self.timestamp,
            properties=properties, wallet_address=text(self.wallet_address), chain_id=text(self.chain_id),
            tx_hash=text(self.transaction_hash), contract_address=text(self.contract_address),
            tx_value=text(properties.get("value", "")), status=text(properties.get("status", "")),
            country=text(self.country), region=text(self.region), city=text(self.city), ip=text(self.ip_address),
        )


class NativeBatch(msgspec.Struct, kw_only=True):
    batch: list[msgspec.Raw]
    sent_at: dt.datetime | None = None
    write_key: Short | None = None  # for navigator.sendBeacon, which cannot send an Authorization header


FORMATS = Literal["native", "segment", "legacy"]
