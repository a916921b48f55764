"""Real-time aggregates, built by the streams app and served by web: what a bridge message carries,
the state of one company's minute (or day) bucket, how a message is applied to buckets exactly once, and how buckets merge into
the snapshot dashboards read.

Buckets are table values keyed `<company>|m|<minute>` (minutes since the epoch, UTC) and
`<company>|d|<day>` (days since the epoch, UTC), each stored as one msgpack value, so a bucket's
counts and its dedup marks change together in one changelog record. A bucket remembers, per stream
shard, the highest entities-stream entry it has applied: the bridge sends a company's entries in
entry order, so an entry at or below that mark (a redelivery after a crash) is skipped, per bucket.

Distinct users and wallets are HyperLogLog sketches (Apache DataSketches): exact in practice for
small counts (the sketch keeps a list of coupons), about 1.6 % relative standard error at lg_k 12.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import datasketches
import msgspec

from models import events as kinds
from models.events import SlimEvent
from models.redis_streams import entry_id_parts, unpack

WINDOW_MINUTES = 60
ACTIVE_USER_WINDOWS = (5, 30, 60)
TOP_N = 10
OTHER = "(other)"
SEPARATOR = "|"


class BridgeMessage(msgspec.Struct, array_like=True):
    """One Kafka message: a company's entities-stream entries from one shard, in entry order, each
    as (entry id, the entry's msgpack-encoded events as the persist pump wrote them)."""

    company_id: str
    shard: int
    entries: list[tuple[str, bytes]]


class Bucket(msgspec.Struct, array_like=True, omit_defaults=True):
    applied: dict[int, tuple[int, int]] = {}
    events: int = 0
    page_views: int = 0
    by_type: dict[str, int] = {}
    by_name: dict[str, int] = {}
    pages: dict[str, int] = {}
    users: bytes = b""
    wallet_connects: int = 0
    wallets: bytes = b""
    transactions: dict[str, int] = {}
    transaction_value: dict[str, str] = {}
    payments_completed: int = 0
    revenue: dict[str, str] = {}


_message_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(BridgeMessage)
_events_decoder = msgspec.msgpack.Decoder(list[SlimEvent])
_bucket_decoder = msgspec.msgpack.Decoder(Bucket)


def encode_message(message: BridgeMessage) -> bytes:
    return _message_encoder.encode(message)


def decode_message(data: bytes) -> BridgeMessage:
    return _message_decoder.decode(data)


def encode_bucket(bucket: Bucket) -> bytes:
    return _message_encoder.encode(bucket)


def decode_bucket(data: bytes | None) -> Bucket:
    return _bucket_decoder.decode(data) if data else Bucket()


def minute_key(company_id: str, minute: int) -> bytes:
    return f"{company_id}{SEPARATOR}m{SEPARATOR}{minute}".encode()


def day_key(company_id: str, day: int) -> bytes:
    return f"{company_id}{SEPARATOR}d{SEPARATOR}{day}".encode()


def parse_key(key: bytes) -> tuple[str, str, int]:
    """(company id, "m" or "d", minute or day number)."""
    company_id, kind, number = key.decode().split(SEPARATOR)
    return company_id, kind, int(number)


def add_decimal(totals: dict[str, str], key: str, value: str) -> None:
    """Adds a decimal string to a running total kept as a string (exact, whatever the magnitude)."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return
    with localcontext() as context:
        context.prec = 80
        totals[key] = str(Decimal(totals.get(key, "0")) + amount)


def count_capped(counts: dict[str, int], key: str, cap: int) -> None:
    """Counts `key`, or OTHER once `cap` distinct keys are kept (a bucket's size stays bounded)."""
    if key in counts or len(counts) < cap:
        counts[key] = counts.get(key, 0) + 1
    else:
        counts[OTHER] = counts.get(OTHER, 0) + 1


class OpenBucket:
    """A bucket being updated: its sketches live as sketches until `close()` serialises them."""

    def __init__(self, bucket: Bucket, lg_k: int) -> None:
        self.bucket = bucket
        self.lg_k = lg_k
        self._users = self._sketch(bucket.users)
        self._wallets = self._sketch(bucket.wallets)

    def _sketch(self, data: bytes) -> datasketches.hll_sketch:
        return datasketches.hll_sketch.deserialize(data) if data else datasketches.hll_sketch(self.lg_k)

    def already_applied(self, shard: int, entry: tuple[int, int]) -> bool:
        mark = self.bucket.applied.get(shard)
        return mark is not None and entry <= mark

    def mark_applied(self, shard: int, entry: tuple[int, int]) -> None:
        self.bucket.applied[shard] = entry

    def add_total(self, event: SlimEvent) -> None:
        """What a day bucket keeps: event and page view counts and the distinct users."""
        bucket = self.bucket
        bucket.events += 1
        if event.type == kinds.PAGE:
            bucket.page_views += 1
        identity = event.user_id or event.anonymous_id
        if identity:
            self._users.update(identity)

    def add(self, event: SlimEvent, max_keys: int) -> None:
        """Everything a minute bucket keeps."""
        self.add_total(event)
        bucket = self.bucket
        bucket.by_type[event.type] = bucket.by_type.get(event.type, 0) + 1
        if event.type == kinds.PAGE:
            count_capped(bucket.pages, event.page_path or "/", max_keys)
        elif event.name:
            count_capped(bucket.by_name, event.name, max_keys)
        if event.type == kinds.WALLET_CONNECT:
            bucket.wallet_connects += 1
        if event.wallet_address:
            self._wallets.update(event.wallet_address.lower())
        if event.type == kinds.TRANSACTION:
            chain = event.chain_id or "unknown"
            count_capped(bucket.transactions, f"{chain}{SEPARATOR}{event.status or 'unknown'}", max_keys)
            if event.tx_value:
                add_decimal(bucket.transaction_value, f"{chain}{SEPARATOR}{event.token or 'native'}", event.tx_value)
        if event.type == kinds.PAYMENT and event.status == "completed":
            bucket.payments_completed += 1
            if event.amount:
                add_decimal(bucket.revenue, event.currency or "unknown", event.amount)

    def close(self) -> Bucket:
        self.bucket.users = b"" if self._users.is_empty() else self._users.serialize_compact()
        self.bucket.wallets = b"" if self._wallets.is_empty() else self._wallets.serialize_compact()
        return self.bucket


def apply_message(
    message: BridgeMessage, load: Callable[[bytes], bytes | None], *, now: float, lg_k: int, max_keys: int
) -> dict[bytes, Bucket]:
    """Applies a bridge message; returns the buckets it changed, by key, to be stored. `load(key)`
    gives a bucket's stored bytes (or None). Bot events, and events older than the minute window (or
    than today, for the day bucket), are left out; entries a bucket applied before are skipped."""
    first_minute = int(now // 60) - WINDOW_MINUTES + 1
    today = int(now // 86400)
    opened: dict[bytes, OpenBucket] = {}
    touched: dict[bytes, tuple[int, int]] = {}

    def bucket_for(key: bytes) -> OpenBucket:
        bucket = opened.get(key)
        if bucket is None:
            bucket = opened[key] = OpenBucket(decode_bucket(load(key)), lg_k)
        return bucket

    for entry_id, payload in message.entries:
        entry = entry_id_parts(entry_id)
        for event in _events_decoder.decode(unpack(payload)):
            if event.is_bot:
                continue
            seconds = event.event_time.timestamp()
            minute, day = int(seconds // 60), int(seconds // 86400)
            if minute >= first_minute:
                key = minute_key(message.company_id, minute)
                bucket = bucket_for(key)
                if not bucket.already_applied(message.shard, entry):
                    bucket.add(event, max_keys)
                    touched[key] = entry
            if day == today:
                key = day_key(message.company_id, day)
                bucket = bucket_for(key)
                if not bucket.already_applied(message.shard, entry):
                    bucket.add_total(event)
                    touched[key] = entry
    changed = {}
    for key, entry in touched.items():
        bucket = opened[key]
        bucket.mark_applied(message.shard, entry)
        changed[key] = bucket.close()
    return changed


def is_expired(kind: str, number: int, now: float) -> bool:
    if kind == "m":
        return number < int(now // 60) - WINDOW_MINUTES + 1
    return number < int(now // 86400)


def estimate_union(sketches: Iterable[bytes], lg_k: int) -> int:
    """Distinct count of the union of serialised HyperLogLog sketches (empty ones skipped); the
    rollups' readers use it too."""
    union = datasketches.hll_union(lg_k)
    for data in sketches:
        if data:
            union.update(datasketches.hll_sketch.deserialize(data))
    return int(round(union.get_result().get_estimate()))


def _top(counts: dict[str, int], n: int = TOP_N) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [{"name": name, "count": count} for name, count in ranked]


def _merge_counts(buckets: Iterable[Bucket], field: str) -> dict[str, int]:
    merged: dict[str, int] = {}
    for bucket in buckets:
        for key, count in getattr(bucket, field).items():
            merged[key] = merged.get(key, 0) + count
    return merged


def _merge_decimals(buckets: Iterable[Bucket], field: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for bucket in buckets:
        for key, value in getattr(bucket, field).items():
            add_decimal(merged, key, value)
    return merged


def _split(key: str) -> tuple[str, str]:
    first, _, second = key.partition(SEPARATOR)
    return first, second


def iso_minute(minute: int) -> str:
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC).isoformat().replace("+00:00", "Z")


def snapshot(minutes: dict[int, Bucket], today: Bucket | None, *, now: float, lg_k: int) -> dict[str, Any]:
    """The dashboard's view of one company at `now`: windows are whole UTC minutes, "the last 5
    minutes" being the current minute and the 4 before it."""
    current = int(now // 60)
    window = [minutes.get(minute) or Bucket() for minute in range(current - WINDOW_MINUTES + 1, current + 1)]
    today = today or Bucket()
    transactions = [
        {"chain_id": chain, "status": status, "count": count}
        for (chain, status), count in sorted((_split(k), v) for k, v in _merge_counts(window, "transactions").items())
    ]
    value = [
        {"chain_id": chain, "token": token, "value": amount}
        for (chain, token), amount in sorted(
            (_split(k), v) for k, v in _merge_decimals(window, "transaction_value").items()
        )
    ]
    return {
        "per_minute": [
            {
                "minute": iso_minute(current - WINDOW_MINUTES + 1 + offset),
                "events": bucket.events,
                "page_views": bucket.page_views,
                "by_type": bucket.by_type,
                "by_name": _top(bucket.by_name),
            }
            for offset, bucket in enumerate(window)
        ],
        "last_hour": {
            "events": sum(bucket.events for bucket in window),
            "page_views": sum(bucket.page_views for bucket in window),
            "by_type": _merge_counts(window, "by_type"),
            "top_events": _top(_merge_counts(window, "by_name")),
            "top_pages": _top(_merge_counts(window, "pages")),
        },
        "active_users": {
            **{
                f"last_{n}_minutes": estimate_union((bucket.users for bucket in window[-n:]), lg_k)
                for n in ACTIVE_USER_WINDOWS
            },
            "today": estimate_union([today.users], lg_k),
        },
        "today": {"events": today.events, "page_views": today.page_views},
        "web3": {
            "wallet_connects": sum(bucket.wallet_connects for bucket in window),
            "distinct_wallets": estimate_union((bucket.wallets for bucket in window), lg_k),
            "transactions": transactions,
            "transaction_value": value,
        },
        "payments": {
            "completed": sum(bucket.payments_completed for bucket in window),
            "revenue": [
                {"currency": currency, "amount": amount}
                for currency, amount in sorted(_merge_decimals(window, "revenue").items())
            ],
        },
        "sketch": {"kind": "hyperloglog", "lg_k": lg_k, "relative_standard_error": round(1.04 / (2**lg_k) ** 0.5, 4)},
    }
