"""The wire formats' bodies: how each cuts a request body into items (raw events with what the envelope
around them said) and turns one item into what enrichment reads. The native format is also what the
CLI's NDJSON import sends, a line an item."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec

from adtivity.errors import InvalidInput
from ingest import wire


@dataclass
class Items:
    """A request's events as raw JSON, with what the envelope around them said."""

    raws: Sequence[bytes | msgspec.Raw]
    wire_format: str  # "native", "segment" or "legacy" (the label of its events in the metrics)
    sent_at: dt.datetime | None = None
    write_key: str | None = None
    context: dict[str, Any] | None = None


class _NativeObject(wire.NativeBatch, kw_only=True):
    """A native body that is an object: a batch, or one event (no "batch"), read in one pass."""

    batch: list[msgspec.Raw] | None = None  # type: ignore[assignment]  # optional here, unlike a batch's


_native_array = msgspec.json.Decoder(list[msgspec.Raw])
_native_object = msgspec.json.Decoder(_NativeObject)
_native_event = msgspec.json.Decoder(wire.NativeEvent)


def split_native(body: bytes) -> Items:
    """One event, an array, or {"batch": [...], "sent_at": ..., "write_key": ...}."""
    first = body.lstrip()[:1]
    if first == b"[":
        return Items(_native_array.decode(body), "native")
    if first != b"{":
        raise InvalidInput("invalid_json", "the body must be a JSON object or array")
    envelope = _native_object.decode(body)
    if envelope.batch is None:
        return Items([body], "native")
    return Items(envelope.batch, "native", sent_at=envelope.sent_at, write_key=envelope.write_key)


def split_segment(body: bytes, *, batched: bool) -> Items:
    if batched:
        batch = msgspec.json.decode(body, type=wire.SegmentBatch)
        return Items(batch.batch, "segment", sent_at=batch.sent_at, write_key=batch.write_key, context=batch.context)
    message = msgspec.json.decode(body, type=wire.SegmentMessage)
    return Items([body], "segment", write_key=message.write_key)


def split_legacy(body: bytes) -> Items:
    if body.lstrip()[:1] == b"[":
        return Items(msgspec.json.decode(body, type=list[msgspec.Raw]), "legacy")
    return Items([msgspec.json.decode(body, type=msgspec.Raw)], "legacy")


def build_native(items: Items, raw: bytes | msgspec.Raw) -> wire.AsIncoming:
    # Its __post_init__ has made every field read as Incoming's: what the type checker cannot see.
    return cast(wire.AsIncoming, _native_event.decode(raw))


def build_segment(message_type: str | None, items: Items, raw: bytes | msgspec.Raw) -> wire.Incoming:
    message = msgspec.json.decode(raw, type=wire.SegmentMessage)
    if message.context is None and items.context:
        message.context = items.context
    if not (message_type or message.type):
        raise msgspec.ValidationError("Expected `str` - at `$.type`")
    return message.incoming(message_type)


def build_legacy(items: Items, raw: bytes | msgspec.Raw) -> wire.Incoming:
    return msgspec.json.decode(raw, type=wire.LegacyEvent).incoming()
