"""The de-duplication filter of one stream shard: time-sliced, blocked Bloom filters in Redis bitmaps.

Shape. Ids are added to the generation of the time they are checked; a generation lasts a third of
DEDUP_WINDOW_DAYS and four are kept (the current one and three before it), so an id stays at least a
window and at most a window and a third. Each generation is a bitmap of 512-bit blocks sized for
DEDUP_FILTER_IDS_PER_DAY ids a day at DEDUP_FILTER_BITS_PER_ID bits each, allocated whole when it
begins. An id (its company and message id) is hashed once (MurmurHash3, x64 128, first 64 bits,
the hash ClickHouse's `murmurHash3_128` computes, so a rebuild can hash in ClickHouse): its block,
and `k` bit positions inside that one block. A check reads one block (64 bytes) a generation; an
add sets `k` bits in the current one. More ids than the size allows raise the share of false
"maybe"s (more exact look-ups), never a wrong answer.

Coverage. The meta hash records when the filter was born, and a rebuild may record that it holds
every id stored since earlier (for the shard, or for one company). The filter answers for a company
only when that coverage reaches back a whole window; otherwise every id is a "maybe". If the meta or
a generation it made is gone (Redis flushed, a key evicted) or the shape settings changed, the
filter starts again empty, born now: every id is a "maybe" until a rebuild or a window has passed.

Order. The pump checks and adds in one step, before it stores: an id is in the filter before it can
be in ClickHouse, so a crash between the two costs an exact look-up later, never a double count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import mmh3
import numpy as np
import redis

from adtivity.settings import Settings
from models import redis_keys

GENERATIONS = 4  # the current one and three before it: each a third of the window
BLOCK_BITS = 512
MAX_HASHES = 8
IDS_PER_CALL = 1_000  # one script call checks this many ids (a few ms of Redis, other clients wait)
PACKED = np.dtype([("block", ">u4"), ("first", ">u2"), ("step", ">u2")])

# KEYS: the meta hash, then the generations newest first (GENERATIONS of them).
# ARGV: now (ms), current generation, generation length (ms), shape, blocks, hashes, company, window
# (ms), then the packed ids (block u32, first position u16, step u16, big-endian).
# Returns a string with one byte an id: "1" maybe seen (look it up), "0" never seen.
_CHECK_AND_ADD = """
local meta = KEYS[1]
local now, generation, length = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local shape, blocks, hashes = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local company, window, packed = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local lost = redis.call('HGET', meta, 'shape') ~= shape
for i = 2, #KEYS do
  if not lost and redis.call('HEXISTS', meta, 'g' .. (generation - i + 2)) == 1 and redis.call('EXISTS', KEYS[i]) == 0 then
    lost = true
  end
end
if lost then
  redis.call('DEL', unpack(KEYS))
  redis.call('HSET', meta, 'shape', shape, 'born', now)
end
if redis.call('HEXISTS', meta, 'g' .. generation) == 0 then
  redis.call('SETBIT', KEYS[2], blocks * 512 - 1, 0)
  redis.call('PEXPIREAT', KEYS[2], (generation + #KEYS - 1) * length + 60000)
  redis.call('HSET', meta, 'g' .. generation, 1)
  redis.call('HDEL', meta, 'g' .. (generation - #KEYS + 1))
end
local since = tonumber(redis.call('HGET', meta, 'since') or redis.call('HGET', meta, 'born'))
local rebuilt = tonumber(redis.call('HGET', meta, 'c:' .. company) or now)
local complete = math.min(since, rebuilt) <= now - window
local answers, sets = {}, {}
for i = 0, #packed / 8 - 1 do
  local block, first, step = struct.unpack('>I4>I2>I2', packed, i * 8 + 1)
  local maybe = not complete
  local key = 2
  while not maybe and key <= #KEYS do
    local bytes = redis.call('GETRANGE', KEYS[key], block * 64, block * 64 + 63)
    if #bytes == 64 then
      maybe = true
      for h = 0, hashes - 1 do
        local position = (first + h * step) % 512
        if bit.band(string.byte(bytes, math.floor(position / 8) + 1), bit.rshift(128, position % 8)) == 0 then
          maybe = false
          break
        end
      end
    end
    key = key + 1
  end
  answers[i + 1] = maybe and '1' or '0'
  for h = 0, hashes - 1 do
    local n = #sets
    sets[n + 1], sets[n + 2], sets[n + 3], sets[n + 4] = 'SET', 'u1', block * 512 + (first + h * step) % 512, 1
  end
  if #sets >= 4000 then
    redis.call('BITFIELD', KEYS[2], unpack(sets))
    sets = {}
  end
end
if #sets > 0 then
  redis.call('BITFIELD', KEYS[2], unpack(sets))
end
return table.concat(answers)
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

    def positions(self, hashes: np.ndarray) -> np.ndarray:
        """Each id's place (block, first bit, step) from its 64-bit hash, in PACKED's layout."""
        placed = np.empty(len(hashes), dtype=PACKED)
        placed["block"] = (hashes >> np.uint64(18)) % np.uint64(self.blocks)
        placed["first"] = hashes & np.uint64(511)
        placed["step"] = ((hashes >> np.uint64(9)) & np.uint64(511)) | np.uint64(1)
        return placed

    def bit_offsets(self, placed: np.ndarray) -> np.ndarray:
        """The bits (offsets in a generation's bitmap, one row of `hashes` an id) the ids set."""
        steps = np.arange(self.hashes, dtype=np.int64)
        inside = (placed["first"].astype(np.int64)[:, None] + steps * placed["step"].astype(np.int64)[:, None]) % 512
        offsets: np.ndarray = placed["block"].astype(np.int64)[:, None] * BLOCK_BITS + inside
        return offsets


def id_hash(company: str, message_id: str) -> int:
    """The 64-bit hash of one (company, message id): `reinterpretAsUInt64(murmurHash3_128(concat(
    toString(company_id), '\\0', message_id)))` in ClickHouse."""
    return int(mmh3.hash64(f"{company}\0{message_id}".encode(), signed=False)[0])


def id_hashes(company: str, message_ids: Sequence[str]) -> np.ndarray:
    prefix = f"{company}\0"
    return np.fromiter(
        (mmh3.hash64((prefix + message_id).encode(), signed=False)[0] for message_id in message_ids),
        dtype=np.uint64,
        count=len(message_ids),
    )


class ShardFilter:
    """The filter of one stream shard, as the persist pump uses it."""

    def __init__(self, settings: Settings, client: redis.Redis, shard: int) -> None:
        self.shape = FilterShape.from_settings(settings)
        self.client = client
        self.shard = shard
        self._check_and_add = client.register_script(_CHECK_AND_ADD)

    def keys(self, generation: int) -> list[str]:
        return [redis_keys.dedup_meta(self.shard)] + [
            redis_keys.dedup_generation(self.shard, generation - age) for age in range(GENERATIONS)
        ]

    def check_and_add(self, company: str, message_ids: Sequence[str], *, now_ms: int | None = None) -> list[bool]:
        """Adds the ids to the filter and answers, for each, whether it may have been stored before
        (True: look it up exactly) or certainly was not (False)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        generation = self.shape.generation_of(now_ms)
        packed = self.shape.positions(id_hashes(company, message_ids)).tobytes()
        answers: list[bool] = []
        step = IDS_PER_CALL * PACKED.itemsize
        for start in range(0, max(len(packed), 1), step):  # no ids: still checks the filter, making it if need be
            reply = self._check_and_add(
                keys=self.keys(generation),
                args=[
                    now_ms,
                    generation,
                    self.shape.generation_ms,
                    self.shape.name,
                    self.shape.blocks,
                    self.shape.hashes,
                    company,
                    self.shape.window_ms,
                    packed[start : start + step],
                ],
            )
            answers.extend(byte == ord("1") for byte in reply)
        return answers
