"""The event envelope: one internal shape for every event, whatever wire format it came in.

Web builds it at ingest (validated and enriched), writes it to the Redis streams, and the workers
and the streams app read it back. Field names follow the ClickHouse `events` columns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

TRACK, PAGE, SCREEN, IDENTIFY, GROUP, ALIAS = "track", "page", "screen", "identify", "group", "alias"
WALLET_CONNECT, WALLET_DISCONNECT, CHAIN_CHANGED = "wallet_connect", "wallet_disconnect", "chain_changed"
SIGNATURE, TRANSACTION, PAYMENT = "signature", "transaction", "payment"
EVENT_TYPES = (
    TRACK,
    PAGE,
    SCREEN,
    IDENTIFY,
    GROUP,
    ALIAS,
    WALLET_CONNECT,
    WALLET_DISCONNECT,
    CHAIN_CHANGED,
    SIGNATURE,
    TRANSACTION,
    PAYMENT,
)
SIGNATURE_STATUSES = ("requested", "confirmed", "rejected")
TRANSACTION_STATUSES = ("submitted", "confirmed", "failed")
PAYMENT_STATUSES = ("started", "completed", "failed", "cancelled")


class Identified:
    """For event structs with `user_id` and `anonymous_id`: who did the event."""

    __slots__ = ()
    user_id: str
    anonymous_id: str

    @property
    def identity(self) -> str:
        """The user id when known, else the anonymous id."""
        return self.user_id or self.anonymous_id


class OnChainAndPayment(msgspec.Struct, kw_only=True):
    """The web3 and payment fields, shared by the envelope and ingest/wire.Incoming."""

    # Web3 (status is also a signature's or a payment's).
    wallet_address: str = ""
    chain_id: str = ""
    tx_hash: str = ""
    tx_from: str = ""
    tx_to: str = ""
    contract_address: str = ""
    tx_value: str = ""
    token: str = ""
    status: str = ""
    # Payments.
    payment_id: str = ""
    amount: str = ""
    currency: str = ""
    payment_method: str = ""


class SlimEvent(OnChainAndPayment, Identified, kw_only=True):
    """The fields of an `Event` that the consumers after ClickHouse use (the entities pump and the
    real-time metrics): decoding a stored event as this skips the rest (properties, context, page
    and client fields), about three times faster than the whole event."""

    company_id: str
    message_id: str
    type: str
    event_time: dt.datetime
    name: str = ""
    user_id: str = ""
    anonymous_id: str = ""
    session_id: str = ""
    previous_id: str = ""
    traits: dict[str, Any] = {}
    page_path: str = ""
    is_bot: bool = False


class Event(SlimEvent, kw_only=True, omit_defaults=True):
    received_at: dt.datetime
    sent_at: dt.datetime | None = None
    time_clamped: bool = False
    group_id: str = ""
    properties: dict[str, Any] = {}
    context: dict[str, Any] = {}
    # Page and campaign.
    page_url: str = ""
    page_title: str = ""
    referrer: str = ""
    referrer_domain: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    click_id_type: str = ""
    click_id: str = ""
    # Client.
    user_agent: str = ""
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device: str = ""
    locale: str = ""
    ip: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    # Tracing.
    request_id: str = ""
