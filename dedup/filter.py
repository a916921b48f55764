"""The de-duplication filter of one stream shard: time-sliced, blocked Bloom filters, checked in the
worker's memory (NumPy) and kept durable in Redis as a journal of the ids added plus snapshots.

Shape. Ids are added to the generation of the time they are checked; a generation lasts a third of
DEDUP_WINDOW_DAYS and four are kept (the current one and three before it), so an id stays at least a
window and at most a window and a third. Each generation is a bitmap of 512-bit blocks sized for
DEDUP_FILTER_IDS_PER_DAY ids a day at DEDUP_FILTER_BITS_PER_ID bits each. An id (its company and
message id) is hashed once (MurmurHash3 x64-128, its first 64 bits: what ClickHouse's
`murmurHash3_128` computes, so a rebuild hashes there) into its block and `k` bit positions inside
that block. More ids than the size allows raise the share of false "maybe"s (more exact look-ups),
never a wrong answer.

Durability. Redis holds, per shard (one hash tag, so one node of a cluster): a meta hash, a journal
(a list; each element one call's generation and id hashes) and a snapshot of each generation (its
bitmap as of a journal position). A worker keeps the filters of the shards it pumps in memory and,
before each check, applies what the journal gained since (a pump that moved to another worker, or a
second pump of the shard, shows there); it appends its own ids only if nobody appended meanwhile,
else it catches up and checks again. Every so often it writes the generations it changed as new
snapshots and trims the journal they cover.

Coverage. The meta records when the filter was born, and a rebuild may record that it holds every
id stored since earlier (for the shard, or one company). The filter answers for a company only when
its coverage reaches back a whole window; otherwise every id is a "maybe". If the meta, the journal
or a snapshot it names is gone (Redis flushed, a key evicted), the shape settings changed, or Redis
restarted since the filter was made (an append-only file written every second may have lost the
last appends, whose ids may be in ClickHouse by now), the filter starts again empty, born now: every
id is a "maybe" until a rebuild (the pump asks for one: `made_anew`) or a window has passed.

Order. The pump checks and adds (journal appended) before it stores: an id is in the filter before
it can be in ClickHouse, so a crash between the two costs an exact look-up later, never a double count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import mmh3
import numpy as np
import redis

from adtivity.settings import Settings
from models import redis_keys

GENERATIONS = 4  # the current one and three before it: each a third of the window
BLOCK_BITS = 512
MAX_HASHES = 8
JOURNAL_ELEMENTS = 64  # past this many journal elements, changed generations are snapshotted
TRANSFER_BYTES = 8 * 1024 * 1024  # snapshots travel to and from Redis in pieces this big

# KEYS: meta, journal, then the snapshots of the current generation and the three before it.
# ARGV: shape, now (ms), the Redis server's run id, "1" to start again regardless, the generations of
# the snapshot keys (newest first), then companies.
# Makes the filter anew (born now) if it is missing, of another shape, made before the server last
# started (an append-only file may have lost its last second of writes), lost a part, or the caller
# asks; answers whether it did, born, appended, base, snapshot version, since, each snapshot's
# journal position (-1: none) and each company's rebuilt coverage (-1: none).
_SYNC = """
local meta, journal = KEYS[1], KEYS[2]
local state = redis.call('HMGET', meta, 'shape', 'appended', 'base', 'run')
local lost = state[1] ~= ARGV[1] or state[4] ~= ARGV[3] or ARGV[4] == '1'
if not lost and redis.call('LLEN', journal) ~= tonumber(state[2]) - tonumber(state[3]) then lost = true end
for i = 3, 6 do
  if not lost and redis.call('HEXISTS', meta, 'snap:' .. ARGV[i + 2]) == 1 and redis.call('EXISTS', KEYS[i]) == 0 then
    lost = true
  end
end
if lost then
  redis.call('DEL', unpack(KEYS))
  redis.call('HSET', meta, 'shape', ARGV[1], 'born', ARGV[2], 'run', ARGV[3], 'appended', 0, 'base', 0, 'snapver', 0)
end
redis.call('HDEL', meta, 'snap:' .. (tonumber(ARGV[8]) - 1))  -- the generation that just expired
local answer = redis.call('HMGET', meta, 'born', 'appended', 'base', 'snapver', 'since')
answer[5] = answer[5] or -1
table.insert(answer, 1, lost and 1 or 0)
for i = 5, 8 do answer[#answer + 1] = redis.call('HGET', meta, 'snap:' .. ARGV[i]) or -1 end
for i = 9, #ARGV do answer[#answer + 1] = redis.call('HGET', meta, 'c:' .. ARGV[i]) or -1 end
return answer
"""
# KEYS: meta, journal. ARGV: born, appended as the caller knows it, the element.
# Appends if the filter is the caller's and nobody appended since; answers the new count, or -1.
_APPEND = """
local state = redis.call('HMGET', KEYS[1], 'born', 'appended')
if state[1] ~= ARGV[1] or state[2] ~= ARGV[2] then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'appended', 1)
"""
# KEYS: meta, journal, then pairs of (staged snapshot, snapshot). ARGV: born, snapshot version,
# position (every element before it is in the snapshots), expiry of each snapshot (ms), generations.
# Puts the staged snapshots in place and trims the journal, if the filter is still the caller's and
# no snapshot newer than the caller's position was written meanwhile (the journal not trimmed past it).
_COMPACT = """
local state = redis.call('HMGET', KEYS[1], 'born', 'snapver', 'base', 'appended')
local pairs = (#KEYS - 2) / 2
if state[1] ~= ARGV[1] or state[2] ~= ARGV[2] or tonumber(state[3]) > tonumber(ARGV[3])
    or tonumber(state[4]) < tonumber(ARGV[3]) then
  for i = 1, pairs do redis.call('DEL', KEYS[1 + 2 * i]) end
  return 0
end
for i = 1, pairs do
  redis.call('RENAME', KEYS[1 + 2 * i], KEYS[2 + 2 * i])
  redis.call('PEXPIREAT', KEYS[2 + 2 * i], ARGV[3 + i])
  redis.call('HSET', KEYS[1], 'snap:' .. ARGV[3 + pairs + i], ARGV[3])
end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[3]) - tonumber(state[3]), -1)
redis.call('HSET', KEYS[1], 'base', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class FilterShape:
    """The sizes every generation of every shard has, from the settings."""

    blocks: int
    hashes: int
    generation_ms: int
    window_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> FilterShape:
        window_ms = settings.dedup_window_days * 86_400_000
        generation_ms = window_ms // (GENERATIONS - 1)
        ids = settings.dedup_filter_ids_per_day * generation_ms / 86_400_000
        blocks = max(1, math.ceil(ids * settings.dedup_filter_bits_per_id / BLOCK_BITS))
        hashes = max(1, min(MAX_HASHES, round(settings.dedup_filter_bits_per_id / 2)))
        return cls(blocks=blocks, hashes=hashes, generation_ms=generation_ms, window_ms=window_ms)

    @property
    def name(self) -> str:
        """What the meta hash records: a filter made with another shape is not read, but started again."""
        return f"{self.blocks}:{self.hashes}:{self.generation_ms}"

    @property
    def generation_bytes(self) -> int:
        return self.blocks * BLOCK_BITS // 8

    def generation_of(self, epoch_ms: int) -> int:
        return epoch_ms // self.generation_ms

    def bit_offsets(self, hashes: np.ndarray) -> np.ndarray:
        """The bits (offsets in a generation's bitmap, one row of `hashes` an id) the ids set."""
        block = ((hashes >> np.uint64(18)) % np.uint64(self.blocks)).astype(np.int64)
        first = (hashes & np.uint64(511)).astype(np.int64)
        step = (((hashes >> np.uint64(9)) & np.uint64(511)) | np.uint64(1)).astype(np.int64)
        inside = (first[:, None] + np.arange(self.hashes, dtype=np.int64) * step[:, None]) % BLOCK_BITS
        offsets: np.ndarray = block[:, None] * BLOCK_BITS + inside
        return offsets


def id_hashes(company: str, message_ids: Sequence[str]) -> np.ndarray:
    """The 64-bit hash of each (company, message id): `reinterpretAsUInt64(murmurHash3_128(concat(
    toString(company_id), '\\0', message_id)))` in ClickHouse."""
    prefix = f"{company}\0"
    return np.fromiter(
        (mmh3.hash64((prefix + message_id).encode(), signed=False)[0] for message_id in message_ids),
        dtype=np.uint64,
        count=len(message_ids),
    )


def covered_since(born: int, since: int | None, rebuilt: int | None = None) -> int:
    """Since when a filter holds every id stored (for a company, with its own rebuilt coverage): its
    birth, or earlier where a rebuild of the shard or of the company vouched for earlier."""
    return min([born, *(value for value in (since, rebuilt) if value is not None)])


def set_bits(bitmap: np.ndarray, offsets: np.ndarray) -> None:
    flat = offsets.ravel()
    np.bitwise_or.at(bitmap, flat >> 3, (128 >> (flat & 7)).astype(np.uint8))


def all_bits_set(bitmap: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each row of offsets, whether every one of its bits is set."""
    found: np.ndarray = np.all(bitmap[offsets >> 3] & (128 >> (offsets & 7)).astype(np.uint8), axis=1)
    return found


def journal_element(generation: int, hashes: np.ndarray) -> bytes:
    return np.uint64(generation).tobytes() + hashes.astype(np.uint64).tobytes()


def read_journal_element(element: bytes) -> tuple[int, np.ndarray]:
    values = np.frombuffer(element, dtype=np.uint64)
    return int(values[0]), values[1:]


@dataclass
class Held:
    """What a worker holds of one shard's filter: which filter it is (born, snapshot version), the
    journal position it has applied, the generations' bitmaps, and the generations changed since
    their snapshot."""

    born: bytes
    snapshot_version: bytes
    applied: int
    base: int
    bitmaps: dict[int, np.ndarray] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)


class ShardFilter:
    """The filter of one stream shard, as the persist pump uses it. Keep one per shard in a process
    (workers/runtime.py does): it holds the generations in memory between batches."""

    def __init__(self, settings: Settings, client: redis.Redis, shard: int) -> None:
        self.shape = FilterShape.from_settings(settings)
        self.client = client
        self.shard = shard
        self.meta = redis_keys.dedup_meta(shard)
        self.journal = redis_keys.dedup_journal(shard)
        self.held: Held | None = None
        self.made_anew = False  # set when a catch-up found the filter gone and started it again
        self._lock = threading.Lock()
        self._sync = client.register_script(_SYNC)
        self._append = client.register_script(_APPEND)
        self._compact = client.register_script(_COMPACT)

    def check_and_add(self, company: str, message_ids: Sequence[str], *, now_ms: int | None = None) -> list[bool]:
        """Adds the ids to the filter and answers, for each, whether it may have been stored before
        (True: look it up exactly) or certainly was not (False)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        hashes = id_hashes(company, message_ids)
        offsets = self.shape.bit_offsets(hashes)
        generation = self.shape.generation_of(now_ms)
        with self._lock:
            while True:
                held, coverage = self.catch_up(company, now_ms)
                complete = coverage <= now_ms - self.shape.window_ms
                maybe = np.ones(len(hashes), dtype=bool)
                if complete:
                    maybe[:] = False
                    for bitmap in held.bitmaps.values():
                        maybe |= all_bits_set(bitmap, offsets)
                if not len(hashes):
                    break
                appended = self._append(
                    keys=[self.meta, self.journal],
                    args=[held.born, held.applied, journal_element(generation, hashes)],
                )
                if appended != -1:
                    set_bits(held.bitmaps[generation], offsets)
                    held.changed.add(generation)
                    held.applied = int(appended)
                    break
            if held.applied - held.base > JOURNAL_ELEMENTS:
                self.snapshot(held)
        return [bool(answer) for answer in maybe]

    def snapshot_keys(self, generation: int) -> list[str]:
        return [redis_keys.dedup_snapshot(self.shard, generation - age) for age in range(GENERATIONS)]

    def sync(self, company: str, now_ms: int, *, start_again: bool = False) -> list[Any]:
        """The filter's state in Redis (see _SYNC), made anew there if it is lost, stale or
        `start_again`; reads none of its bitmaps."""
        generation = self.shape.generation_of(now_ms)
        generations = [generation - age for age in range(GENERATIONS)]
        run_id = self.client.info("server")["run_id"]
        return list(
            self._sync(
                keys=[self.meta, self.journal, *self.snapshot_keys(generation)],
                args=[self.shape.name, now_ms, run_id, "1" if start_again else "0", *generations, company],
            )
        )

    def catch_up(self, company: str, now_ms: int) -> tuple[Held, int]:
        """The filter as Redis has it now (made anew there if lost), and since when it holds every id
        of `company`. Redis holding fewer journal elements than this worker applied means it lost
        writes (restored from an older state): the filter is started again."""
        generation = self.shape.generation_of(now_ms)
        generations = [generation - age for age in range(GENERATIONS)]
        rolled_back = False
        while True:
            answer = self.sync(company, now_ms, start_again=rolled_back)
            made_anew, born, appended, base, version, since = answer[:6]
            held = self.held
            rolled_back = held is not None and held.born == born and held.applied > int(appended)
            if not rolled_back:
                break
        self.made_anew = self.made_anew or bool(made_anew)
        snapshots = {number: int(position) for number, position in zip(generations, answer[6:10], strict=True)}
        rebuilt = int(answer[10])
        if held is None or held.born != born or held.snapshot_version != version:
            held = self.held = self.load(born, version, snapshots, int(base))
        elif held.applied < int(base):
            self.load_newer_snapshots(held, snapshots, int(base))
        held.base = int(base)
        self.apply_journal(held, snapshots, int(appended), oldest=generations[-1])
        for number in list(held.bitmaps):
            if number < generations[-1]:
                del held.bitmaps[number]
                held.changed.discard(number)
        for number in generations:
            if number not in held.bitmaps:
                held.bitmaps[number] = np.zeros(self.shape.generation_bytes, dtype=np.uint8)
        known = [value if value >= 0 else None for value in (int(since), rebuilt)]
        return held, covered_since(int(born), *known)

    def load(self, born: bytes, version: bytes, snapshots: dict[int, int], base: int) -> Held:
        held = Held(born=born, snapshot_version=version, applied=base, base=base)
        for number, position in snapshots.items():
            if position >= 0:
                held.bitmaps[number] = self.read_snapshot(redis_keys.dedup_snapshot(self.shard, number))
        return held

    def load_newer_snapshots(self, held: Held, snapshots: dict[int, int], base: int) -> None:
        """Another worker snapshotted and trimmed the journal past what this one applied: the
        generations it snapshotted since are read again (the others hold nothing this one lacks)."""
        for number, position in snapshots.items():
            if position > held.applied:
                held.bitmaps[number] = self.read_snapshot(redis_keys.dedup_snapshot(self.shard, number))
                held.changed.discard(number)
        held.applied = base

    def read_snapshot(self, key: str) -> np.ndarray:
        size = int(self.client.strlen(key))
        raw = bytearray()
        for start in range(0, size, TRANSFER_BYTES):
            raw += cast(bytes, self.client.getrange(key, start, min(size, start + TRANSFER_BYTES) - 1))
        return np.frombuffer(bytes(raw), dtype=np.uint8).copy()

    def apply_journal(self, held: Held, snapshots: dict[int, int], appended: int, *, oldest: int) -> None:
        """Applies the journal's elements from `held.applied` on, each to its generation unless that
        generation's snapshot already holds it (or the generation is past keeping)."""
        if held.applied >= appended:
            return
        elements = self.client.lrange(self.journal, held.applied - held.base, appended - held.base - 1)
        for position, element in enumerate(elements, start=held.applied):
            number, hashes = read_journal_element(cast(bytes, element))
            if number >= oldest and position >= snapshots.get(number, -1):
                if number not in held.bitmaps:
                    held.bitmaps[number] = np.zeros(self.shape.generation_bytes, dtype=np.uint8)
                set_bits(held.bitmaps[number], self.shape.bit_offsets(hashes))
                held.changed.add(number)
        held.applied = appended

    def snapshot(self, held: Held) -> None:
        """Writes the changed generations as snapshots at the applied position and trims the journal
        they cover (nothing happens if the filter changed hands meanwhile: the next catch-up loads it)."""
        changed = sorted(number for number in held.changed if number in held.bitmaps)
        staged, keys = [], []
        for number in changed:
            staging = redis_keys.dedup_staging(self.shard, number, "pump")
            raw = held.bitmaps[number].tobytes()
            self.client.delete(staging)
            for start in range(0, len(raw), TRANSFER_BYTES):
                self.client.setrange(staging, start, raw[start : start + TRANSFER_BYTES])
            staged += [staging, redis_keys.dedup_snapshot(self.shard, number)]
            keys.append(number)
        expiries = [(number + GENERATIONS) * self.shape.generation_ms + 60_000 for number in keys]
        if self._compact(
            keys=[self.meta, self.journal, *staged],
            args=[held.born, held.snapshot_version, held.applied, *expiries, *keys],
        ):
            held.changed.clear()
