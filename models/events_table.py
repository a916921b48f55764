"""The ClickHouse `events` table as the workers write it: column names, their types (passed on every
insert, since clickhouse-connect 1.6.0's DESCRIBE path fails on ClickHouse 18.16), and the mapping
of an `Event` onto a row."""
from __future__ import annotations

import uuid
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter

import msgspec

from models.events import Event

COLUMNS: tuple[tuple[str, str], ...] = (
    ("company_id", "UUID"), ("message_id", "String"), ("type", "String"), ("name", "String"),
    ("event_time", "DateTime"), ("received_at", "DateTime"), ("sent_at", "Nullable(DateTime)"),
    ("time_clamped", "UInt8"), ("user_id", "String"), ("anonymous_id", "String"), ("session_id", "String"),
    ("group_id", "String"), ("previous_id", "String"), ("properties", "String"), ("traits", "String"),
    ("context", "String"), ("page_url", "String"), ("page_path", "String"), ("page_title", "String"),
    ("referrer", "String"), ("referrer_domain", "String"), ("utm_source", "String"), ("utm_medium", "String"),
    ("utm_campaign", "String"), ("utm_term", "String"), ("utm_content", "String"), ("click_id_type", "String"),
    ("click_id", "String"), ("user_agent", "String"), ("browser", "String"), ("browser_version", "String"),
    ("os", "String"), ("os_version", "String"), ("device", "String"), ("locale", "String"), ("ip", "String"),
    ("country", "String"), ("region", "String"), ("city", "String"), ("is_bot", "UInt8"),
    ("wallet_address", "String"), ("chain_id", "String"), ("tx_hash", "String"), ("tx_from", "String"),
    ("tx_to", "String"), ("contract_address", "String"), ("tx_value", "String"), ("tx_value_num", "Float64"),
    ("token", "String"), ("status", "String"), ("payment_id", "String"), ("amount", "Decimal(38, 9)"),
    ("currency", "String"), ("payment_method", "String"), ("request_id", "String"), ("stream_entry", "String"),
)
COLUMN_NAMES = [name for name, _ in COLUMNS]
COLUMN_TYPES = [kind for _, kind in COLUMNS]
_json = msgspec.json.Encoder()
# Columns in table order, each read straight off the event or computed.
_COMPUTED = {
    "company_id": lambda e: company_uuid(e.company_id),
    "event_time": lambda e: e.event_time.replace(tzinfo=None),
    "received_at": lambda e: e.received_at.replace(tzinfo=None),
    "sent_at": lambda e: e.sent_at.replace(tzinfo=None) if e.sent_at else None,
    "time_clamped": lambda e: int(e.time_clamped),
    "is_bot": lambda e: int(e.is_bot),
    "properties": lambda e: _json.encode(e.properties).decode() if e.properties else "{}",
    "traits": lambda e: _json.encode(e.traits).decode() if e.traits else "{}",
    "context": lambda e: _json.encode(e.context).decode() if e.context else "{}",
    "tx_value_num": lambda e: float(e.tx_value) if e.tx_value else 0.0,
    "amount": lambda e: Decimal(e.amount) if e.amount else _ZERO,
}
_ZERO = Decimal(0)


@lru_cache(maxsize=4096)
def company_uuid(company_id: str) -> uuid.UUID:
    return uuid.UUID(company_id)


_GETTERS = [_COMPUTED.get(name) or attrgetter(name) for name in COLUMN_NAMES[:-1]]


def to_columns(events: list[tuple[str, Event]]) -> list[list]:
    """The columns (in COLUMN_NAMES order) of (stream entry, event) pairs, for a column-oriented
    insert: one pass per column is cheaper than building a row list per event."""
    columns = [[getter(event) for _, event in events] for getter in _GETTERS]
    columns.append([entry for entry, _ in events])
    return columns
