"""The Redis streams that carry accepted events from web to the workers and the streams app.

Events are spread over `shards` streams by a stable hash of the company, so one company's events
stay in order in one stream. Each entry holds one request's events for one company, encoded as
MessagePack: one XADD a request, however many events it carried.
"""
from __future__ import annotations

import zlib

import msgspec

from models.events import Event
from models.redis_keys import PREFIX

PERSIST_GROUP = "persist"
DEAD_LETTER_STREAM = f"{PREFIX}:ev:dead"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Event])


def stream_key(shard: int) -> str:
    return f"{PREFIX}:ev:{shard}"


def shard_for(company_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(company_id.encode()) % shards


def encode_entry(company_id: str, events: list[Event], request_id: str) -> dict[str, bytes]:
    return {"c": company_id.encode(), "r": request_id.encode(), "e": _encoder.encode(events)}


def decode_entry(fields: dict[bytes, bytes]) -> list[Event]:
    """The events of an entry; raises msgspec.DecodeError/ValidationError (or KeyError) on a bad one."""
    return _decoder.decode(fields[b"e"])
