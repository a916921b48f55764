"""Rebuilding the de-duplication filters from ClickHouse (`python -m adtivity rebuild-dedup`), after
they were lost (Redis flushed, a key evicted), resized (the shape settings changed) or when they are
new (first start on an existing store): until then the pump looks every id up exactly.

For each shard (or only the given company's): ClickHouse hashes the window's message ids of the
shard's companies (`event_ids`, only 8 bytes an id travel), each generation's bitmap is built here
and OR-ed into that generation's snapshot, while the pumps keep adding to the journal; the pumps
load the new snapshots. Then the meta records that the filter holds every id stored since a window
before the rebuild began, so the pumps trust it.

Ids the pump checked before the rebuild began but stored after its read are in the live filter only
if the live filter was born before the pump checked them; a check and its store are at most
DEDUP_SETTLE_SECONDS apart, so a rebuild of a filter born less than that long ago first waits. If the
filter is lost again while the rebuild runs, nothing is recorded (run it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis
from clickhouse_connect.driver.client import Client

from adtivity.settings import Settings
from dedup.filter import GENERATIONS, FilterShape, ShardFilter, covered_since, set_bits
from models import redis_keys
from models.redis_streams import shard_for

UPLOAD_BYTES = 8 * 1024 * 1024  # a bitmap goes to Redis in pieces this big (SETRANGE)

# KEYS: meta, the generation's snapshot, the staged bitmap. ARGV: shape, born, generation, expiry (ms).
# OR-s the staged bitmap into the snapshot (or makes it the snapshot, holding no journal element yet)
# if the filter is still the one the rebuild started from; a new snapshot version makes pumps reload.
_MERGE = """
if redis.call('HGET', KEYS[1], 'shape') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'born') ~= ARGV[2] then
  redis.call('DEL', KEYS[3])
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'snap:' .. ARGV[3]) == 1 then
  redis.call('BITOP', 'OR', KEYS[2], KEYS[2], KEYS[3])
  redis.call('DEL', KEYS[3])
else
  redis.call('RENAME', KEYS[3], KEYS[2])
  redis.call('PEXPIREAT', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[1], 'snap:' .. ARGV[3], redis.call('HGET', KEYS[1], 'base'))
end
redis.call('HINCRBY', KEYS[1], 'snapver', 1)
return 1
"""
# KEYS: meta. ARGV: shape, born, the field ("since", or "c:<company>"), since when it holds every id.
_MARK = """
if redis.call('HGET', KEYS[1], 'shape') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'born') ~= ARGV[2] then
  return 0
end
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or ARGV[4])
redis.call('HSET', KEYS[1], ARGV[3], math.min(current, tonumber(ARGV[4])))
return 1
"""


@dataclass
class RebuildReport:
    ids: int = 0
    shards: list[int] = field(default_factory=list)
    lost_meanwhile: list[int] = field(default_factory=list)


class Rebuild:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        clickhouse: Client,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.redis = client
        self.clickhouse = clickhouse
        self.shape = FilterShape.from_settings(settings)
        self.clock = clock
        self.sleep = sleep
        self._merge = client.register_script(_MERGE)
        self._mark = client.register_script(_MARK)

    def run(self, company: str | None = None, *, progress: bool = False) -> RebuildReport:
        """Rebuilds every shard's filter, or only `company`'s ids into its shard's."""
        shards = (
            [shard_for(company, self.settings.stream_shards)] if company else list(range(self.settings.stream_shards))
        )
        report = RebuildReport()
        for shard in shards:
            report.shards.append(shard)
            ids, kept = self.rebuild_shard(shard, company, progress=progress)
            report.ids += ids
            if not kept:
                report.lost_meanwhile.append(shard)
        return report

    def needed(self) -> list[int]:
        """The shards whose filter exists, has the current shape, does not cover a whole window yet
        (made anew after a loss or a Redis restart, or new) and is old enough to rebuild without waiting."""
        now = self.now_ms()
        shards = []
        for shard in range(self.settings.stream_shards):
            shape, born, since = self.redis.hmget(redis_keys.dedup_meta(shard), ["shape", "born", "since"])
            if shape is None or born is None or shape != self.shape.name.encode():
                continue  # no filter yet, or one the next batch starts again
            coverage = covered_since(int(born), int(since) if since is not None else None)
            settled = int(born) + self.settings.dedup_settle_seconds * 1000 <= now
            if coverage > now - self.shape.window_ms and settled:
                shards.append(shard)
        return shards

    def rebuild_shard(self, shard: int, company: str | None, *, progress: bool) -> tuple[int, bool]:
        """(ids read, whether the filter was still the same one at the end)."""
        live = ShardFilter(self.settings, self.redis, shard)
        born = live.sync(company or "", self.now_ms())[1]  # makes a missing or stale filter anew
        meta = redis_keys.dedup_meta(shard)
        settled = int(born) + self.settings.dedup_settle_seconds * 1000
        while self.now_ms() < settled:
            self.sleep(min(1.0, (settled - self.now_ms()) / 1000))
        started_ms = self.now_ms()
        generation = self.shape.generation_of(started_ms)
        oldest = generation - GENERATIONS + 1
        companies = [company] if company else self.companies_of(shard, oldest)
        bitmaps, ids = self.read(companies, oldest, generation, progress=progress, shard=shard)
        kept = True
        for number, bitmap in bitmaps.items():
            kept = self.merge(shard, number, bitmap, born) and kept
        if kept:
            target = f"c:{company}" if company else "since"
            kept = bool(
                self._mark(keys=[meta], args=[self.shape.name, born, target, started_ms - self.shape.window_ms])
            )
        return ids, kept

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def companies_of(self, shard: int, oldest: int) -> list[str]:
        rows = self.clickhouse.query(
            "SELECT DISTINCT toString(company_id) FROM event_ids WHERE received_at >= toDateTime(%(oldest)s)",
            parameters={"oldest": oldest * self.shape.generation_ms // 1000},
        ).result_rows
        return [row[0] for row in rows if shard_for(row[0], self.settings.stream_shards) == shard]

    def read(
        self, companies: list[str], oldest: int, newest: int, *, progress: bool, shard: int
    ) -> tuple[dict[int, np.ndarray], int]:
        """Each generation's bitmap of the companies' ids received since generation `oldest` began."""
        from tqdm import tqdm

        bitmaps = {
            number: np.zeros(self.shape.generation_bytes, dtype=np.uint8) for number in range(oldest, newest + 1)
        }
        if not companies:
            return bitmaps, 0
        where = (
            "company_id IN (" + ", ".join(f"toUUID('{c}')" for c in companies) + ") "
            "AND received_at >= toDateTime(%(oldest)s)"
        )
        parameters = {"oldest": oldest * self.shape.generation_ms // 1000}
        total = self.clickhouse.query(f"SELECT count() FROM event_ids WHERE {where}", parameters=parameters)
        ids = 0
        with (
            tqdm(
                total=total.result_rows[0][0], unit="id", unit_scale=True, desc=f"shard {shard}", disable=not progress
            ) as bar,
            self.clickhouse.query_column_block_stream(
                "SELECT reinterpretAsUInt64(murmurHash3_128(concat(toString(company_id), '\\0', message_id))), "
                f"intDiv(toUInt64(toUnixTimestamp(received_at)) * 1000, {self.shape.generation_ms}) "
                f"FROM event_ids WHERE {where}",
                parameters=parameters,
            ) as blocks,
        ):
            for block in blocks:
                hashes = np.asarray(block[0], dtype=np.uint64)
                generations = np.clip(np.asarray(block[1], dtype=np.int64), oldest, newest)
                offsets = self.shape.bit_offsets(hashes)
                for number, bitmap in bitmaps.items():
                    set_bits(bitmap, offsets[generations == number])
                ids += len(hashes)
                bar.update(len(hashes))
        return bitmaps, ids

    def merge(self, shard: int, number: int, bitmap: np.ndarray, born: bytes) -> bool:
        staging = redis_keys.dedup_staging(shard, number, "rebuild")
        raw = bitmap.tobytes()
        self.redis.delete(staging)
        for start in range(0, len(raw), UPLOAD_BYTES):
            self.redis.setrange(staging, start, raw[start : start + UPLOAD_BYTES])
        expires = (number + GENERATIONS) * self.shape.generation_ms + 60_000
        keys = [redis_keys.dedup_meta(shard), redis_keys.dedup_snapshot(shard, number), staging]
        return bool(self._merge(keys=keys, args=[self.shape.name, born, number, expires]))
