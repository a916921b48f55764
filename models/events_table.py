"""The ClickHouse `events` table as the workers write it: column names, their types (passed on every
insert, since clickhouse-connect 1.6.0's DESCRIBE path fails on ClickHouse 18.16), and the mapping
of an `Event` onto a row."""
from __future__ import annotations

import uuid
from decimal import Decimal

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
    ("currency", "String"), ("payment_method", "String"), ("request_id", "String"),
)
COLUMN_NAMES = [name for name, _ in COLUMNS]
COLUMN_TYPES = [kind for _, kind in COLUMNS]
_json = msgspec.json.Encoder()
_DIRECT = {name for name, kind in COLUMNS if kind == "String"} - {"properties", "traits", "context"}


def to_row(event: Event) -> list:
    values = {name: getattr(event, name) for name in _DIRECT}
    values.update(
        company_id=uuid.UUID(event.company_id),
        event_time=event.event_time.replace(tzinfo=None),
        received_at=event.received_at.replace(tzinfo=None),
        sent_at=event.sent_at.replace(tzinfo=None) if event.sent_at else None,
        time_clamped=int(event.time_clamped),
        is_bot=int(event.is_bot),
        properties=_json.encode(event.properties).decode(),
        traits=_json.encode(event.traits).decode(),
        context=_json.encode(event.context).decode(),
        tx_value_num=float(event.tx_value) if event.tx_value else 0.0,
        amount=Decimal(event.amount) if event.amount else Decimal(0),
    )
    return [values[name] for name in COLUMN_NAMES]
