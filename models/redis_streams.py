"""The Redis streams that carry accepted events from web to the workers and the streams app.

Events are spread over `shards` streams by a stable hash of the company, so one company's events
stay in order in one stream. Each entry holds one request's events for one company: fields "c"
(company id), "r" (request id), "e" (the events, MessagePack) and "s" (the session ids derived at
ingest for the events that came without one, space-separated, in their order). One XADD a request.
Entries of the events streams also carry, for the persist pump, "m" (the message ids, a MessagePack
array) and "j" (the ClickHouse rows, models/events_table.stream_rows): it stores them without
decoding the events. An entry without them (a replay from quarantine) is stored from "e".

"e" and "j" are LZ4-compressed (`pack`): a request's events shrink about eight times, and Redis's
XADD, which copies an entry's bytes several times, costs a large share of ingest otherwise. A
compressed field starts with the byte 0xC1, which neither MessagePack nor JSON ever begins with, so
entries written before compression (and quarantined payloads) still read (`unpack`).
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Any

import lz4.block
import msgspec
import redis

from models.events import Event
from models.events_table import UnixSeconds, stream_rows
from models.redis_keys import PREFIX, shard_tag

PERSIST_GROUP = "persist"
ENTITIES_GROUP = "entities"
REALTIME_GROUP = "realtime"  # the streams app's bridge, on the entities streams
DEAD_LETTER_STREAM = f"{PREFIX}:ev:dead"
_encoder = msgspec.msgpack.Encoder()
_decoders: dict[type[Any], msgspec.msgpack.Decoder[list[Any]]] = {Event: msgspec.msgpack.Decoder(list[Event])}
_message_ids = msgspec.msgpack.Decoder(list[str])
_PACKED = b"\xc1"  # never the first byte of MessagePack ("never used") or of JSON


def stream_key(shard: int) -> str:
    return f"{PREFIX}:ev:{shard_tag(shard)}"


def entities_stream_key(shard: int) -> str:
    """Events newly stored in ClickHouse, handed on by the persist pump to the entities pump. Entries
    have the same fields, with "r" naming the events-stream entry they came from."""
    return f"{PREFIX}:ent:{shard_tag(shard)}"


def all_streams(shards: int) -> list[str]:
    """Every events stream and entities stream."""
    return [key(shard) for shard in range(shards) for key in (stream_key, entities_stream_key)]


def shard_for(company_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(company_id.encode()) % shards


def entry_fields(company_id: str | bytes, source: str, payload: bytes, sessions: bytes = b"") -> dict[bytes, bytes]:
    """The fields of a stream entry: company, source ("r": a request id, or the events-stream entry
    an entities-stream entry came from), encoded events and derived session ids."""
    company = company_id if isinstance(company_id, bytes) else company_id.encode()
    return {b"c": company, b"r": source.encode(), b"e": payload, b"s": sessions}


def encode_entry(company_id: str, events: list[Event], source: str) -> dict[bytes, bytes]:
    """An events-stream entry, as ingest writes it (with no session ids left to derive)."""
    payload, message_ids, rows = encode_stored(events)
    return {**entry_fields(company_id, source, payload), b"m": message_ids, b"j": rows}


def encode_stored(events: list[Event], seconds: UnixSeconds | None = None) -> tuple[bytes, bytes, bytes]:
    """What an events-stream entry carries of its events: "e" (MessagePack), "m" (message ids) and
    "j" (ClickHouse rows; `seconds` as for stream_rows). Raises OverflowError for an integer beyond
    64 bits."""
    return (
        encode_events(events),
        _encoder.encode([event.message_id for event in events]),
        pack(stream_rows(events, seconds)),
    )


def pack(data: bytes) -> bytes:
    """`data` compressed for a stream entry."""
    return _PACKED + bytes(lz4.block.compress(data))


def unpack(field: bytes) -> bytes:
    """A stream entry's field as it was before `pack` (a field that was never packed, as it is).
    Raises msgspec.DecodeError when a packed field is corrupt."""
    if field[:1] != _PACKED:
        return field
    try:
        return bytes(lz4.block.decompress(field[1:]))
    except lz4.block.LZ4BlockError as error:
        raise msgspec.DecodeError(f"corrupt compressed field: {error}") from None


def decode_message_ids(fields: dict[bytes, bytes]) -> list[str] | None:
    """The "m" field's message ids, or None for an entry without it."""
    encoded = fields.get(b"m")
    return None if encoded is None else _message_ids.decode(encoded)


def decode_entry(fields: dict[bytes, bytes], event_type: type[Any] = Event) -> list[Any]:
    """The events of an entry, with their derived session ids, as `event_type` (Event, or a struct of
    some of its fields with a `session_id`, which decodes faster); raises msgspec.DecodeError or
    ValidationError (or KeyError) on a bad one."""
    decoder = _decoders.get(event_type)
    if decoder is None:
        decoder = _decoders[event_type] = msgspec.msgpack.Decoder(list[event_type])  # type: ignore[valid-type]
    events = decoder.decode(unpack(fields[b"e"]))
    derived = iter(fields.get(b"s", b"").decode().split())
    for event in events:
        if not event.session_id:
            event.session_id = next(derived, "")
    return events


def encode_events(events: list[Event]) -> bytes:
    """The "e" field: the events as MessagePack, packed."""
    return pack(_encoder.encode(events))


def entry_id_parts(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as (milliseconds, sequence), which order as the ids do."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def entry_seconds(entry_id: bytes | str) -> float:
    """When an entry was added: its id begins with the millisecond."""
    return entry_id_parts(entry_id)[0] / 1000


def first_undelivered(client: redis.Redis | redis.client.Pipeline, stream: str, last_delivered: bytes) -> Any:
    """XRANGE for the first entry after a group's last delivered one (a list of at most one entry;
    queued, when `client` is a pipeline). Redis's own count of them, a group's `lag`, is unknown
    (null) after Redis restarts from its append-only file; this looks instead."""
    return client.xrange(stream, min=b"(" + last_delivered, count=1)


def backlog_since(client: redis.Redis, watched: list[tuple[str, str]], now: float) -> float:
    """The time of the oldest entry that some (stream, group) of `watched` has not acknowledged (read
    and pending, or not read yet), or `now` when there is none: every entry added before the returned
    moment has been processed by all of those groups."""
    with client.pipeline(transaction=False) as pipe:
        for stream, group in watched:
            pipe.xpending(stream, group)
            pipe.xinfo_groups(stream)
        answers = pipe.execute(raise_on_error=False)
    oldest = now
    undelivered = []
    for index, (stream, group) in enumerate(watched):
        pending, groups = answers[2 * index], answers[2 * index + 1]
        if isinstance(pending, Exception) or isinstance(groups, Exception):
            continue  # no such stream or group yet: nothing added there waits for it
        if pending["pending"]:
            oldest = min(oldest, entry_seconds(pending["min"]))
        info = next((g for g in groups if g["name"].decode() == group), None)
        if info is not None and info.get("lag") != 0:  # None: Redis cannot tell, so look
            undelivered.append((stream, info["last-delivered-id"]))
    if undelivered:
        with client.pipeline(transaction=False) as pipe:
            for stream, delivered in undelivered:
                first_undelivered(pipe, stream, delivered)
            for entries in pipe.execute():
                if entries:
                    oldest = min(oldest, entry_seconds(entries[0][0]))
    return oldest


def pumped_watch(shard: int) -> list[tuple[str, str]]:
    """What the worker's two pumps of `shard` must acknowledge: the events stream (persist) and the
    entities stream (entities)."""
    return [(stream_key(shard), PERSIST_GROUP), (entities_stream_key(shard), ENTITIES_GROUP)]


def unpumped(client: redis.Redis, shard: int) -> bool:
    """Whether `shard` holds entries its pumps have not acknowledged, counting those of a stream no
    pump has read yet (no group)."""
    now = time.time()
    if backlog_since(client, pumped_watch(shard), now) < now:
        return True
    for stream, group in pumped_watch(shard):
        try:
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream
            continue
        if not any(g["name"].decode() == group for g in groups) and client.xlen(stream):
            return True
    return False


def stranded_shards(client: redis.Redis, shards: int) -> list[int]:
    """Shards at or above `shards` that still hold entries for the pumps: left by a larger
    STREAM_SHARDS (or written by a web process that still has one). They must be drained."""
    found = set()
    for key in client.scan_iter(match=f"{PREFIX}:*", count=1000, _type="stream"):  # one pass over the keys
        name = key.decode()
        suffix = name.rpartition(":")[2].strip("{}")
        if (
            suffix.isdigit()
            and int(suffix) >= shards
            and name in (stream_key(int(suffix)), entities_stream_key(int(suffix)))
        ):
            found.add(int(suffix))
    return sorted(shard for shard in found if unpumped(client, shard))


def persisted_watch(shards: int) -> list[tuple[str, str]]:
    """What must be acknowledged for an event to be in ClickHouse."""
    return [(stream_key(shard), PERSIST_GROUP) for shard in range(shards)]


def realtime_watch(shards: int) -> list[tuple[str, str]]:
    """What must be acknowledged for an event to be in the real-time snapshots."""
    return persisted_watch(shards) + [(entities_stream_key(shard), REALTIME_GROUP) for shard in range(shards)]


_UNTAGGED = re.compile(rf"^{PREFIX}:(ev|ent|handed):(\d+)$|^{PREFIX}:failures:{PREFIX}:(ev|ent):(\d+):(\w+)$")


def tag_untagged_keys(client: redis.Redis) -> list[str]:
    """Renames the stream-shard keys of a single Redis written before they carried a hash tag
    (`adt:ev:3` -> `adt:ev:{3}`), keeping their entries and consumer groups; returns the old names.
    A key whose new name exists already is left alone (and not returned). Run while no process
    writes (as `adtivity migrate` is)."""
    renamed = []
    for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        name = key.decode()
        found = _UNTAGGED.match(name)
        if found is None:
            continue
        kind, shard, failures_kind, failures_shard, group = found.groups()
        if kind:
            new = f"{PREFIX}:{kind}:{shard_tag(int(shard))}"
        else:
            new = f"{PREFIX}:failures:{PREFIX}:{failures_kind}:{shard_tag(int(failures_shard))}:{group}"
        if client.renamenx(name, new):
            renamed.append(name)
    return sorted(renamed)
