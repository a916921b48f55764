"""The Redis streams that carry accepted events from web to the workers and the streams app.

Events are spread over `shards` streams by a stable hash of the company, so one company's events
stay in order in one stream. Each entry holds one request's events for one company: fields "c"
(company id), "r" (request id), "e" (the events, MessagePack) and "s" (the session ids derived at
ingest for the events that came without one, space-separated, in their order). One XADD a request.
"""
from __future__ import annotations

import zlib

import msgspec

from models.events import Event
from models.redis_keys import PREFIX

PERSIST_GROUP = "persist"
ENTITIES_GROUP = "entities"
REALTIME_GROUP = "realtime"  # the streams app's bridge, on the entities streams
DEAD_LETTER_STREAM = f"{PREFIX}:ev:dead"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Event])


def stream_key(shard: int) -> str:
    return f"{PREFIX}:ev:{shard}"


def entities_stream_key(shard: int) -> str:
    """Events newly stored in ClickHouse, handed on by the persist pump to the entities pump. Entries
    have the same fields, with "r" naming the events-stream entry they came from."""
    return f"{PREFIX}:ent:{shard}"


def shard_for(company_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(company_id.encode()) % shards


def entry_fields(company_id: str | bytes, source: str, payload: bytes, sessions: bytes = b"") -> dict[bytes, bytes]:
    """The fields of a stream entry: company, source ("r": a request id, or the events-stream entry
    an entities-stream entry came from), encoded events and derived session ids."""
    company = company_id if isinstance(company_id, bytes) else company_id.encode()
    return {b"c": company, b"r": source.encode(), b"e": payload, b"s": sessions}


def encode_entry(company_id: str, events: list[Event], source: str) -> dict[bytes, bytes]:
    return entry_fields(company_id, source, encode_events(events))


def decode_entry(fields: dict[bytes, bytes]) -> list[Event]:
    """The events of an entry, with their derived session ids; raises msgspec.DecodeError or
    ValidationError (or KeyError) on a bad one."""
    events = _decoder.decode(fields[b"e"])
    derived = iter(fields.get(b"s", b"").decode().split())
    for event in events:
        if not event.session_id:
            event.session_id = next(derived, "")
    return events


def encode_events(events: list[Event]) -> bytes:
    return _encoder.encode(events)
