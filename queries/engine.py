"""Running a query for a company: check it, resolve its segments, answer it from the rollups when they
hold it exactly or else from ClickHouse, and cache the answer in Redis stamped with the rollups'
version (a rollup run makes new answers at once). An answer that reaches past the rollups' watermark
is fresh only QUERY_LIVE_CACHE_SECONDS, so "today" keeps moving. A stale answer is recomputed by one
request at a time; requests meanwhile get the stale answer (stale-while-revalidate), so a popular
dashboard does not send the same question to ClickHouse from every viewer at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from adtivity.errors import NotFound, Unprocessable
from adtivity.settings import Settings
from models import redis_keys
from models.clickhouse import ClientPool
from models.segments import Segment
from queries import clickhouse_source, rollup_source
from queries.rollup_reader import RollupReader
from queries.segments import company_segment
from queries.spec import Query, local_midnight, parse_query
from queries.sql import Compiler

_json = msgspec.json.Encoder()


def iso(moment: dt.datetime | None) -> str | None:
    return moment.replace(tzinfo=dt.UTC).isoformat() if moment else None


class QueryEngine:
    def __init__(
        self, settings: Settings, redis: Any, clickhouse: ClientPool, clock: Callable[[], dt.datetime]
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.clickhouse = clickhouse
        self.clock = clock  # aware UTC now

    def answer(self, company_id: str, body: Any) -> bytes:
        """The answer's JSON: `results` rows of dimension and metric values, `meta`, and how fresh."""
        now = self.clock()
        query = parse_query(body, self.settings, now)
        segments = {}
        for segment_id in query.segments:
            try:
                segments[segment_id] = company_segment(uuid.UUID(company_id), segment_id)
            except NotFound:
                raise Unprocessable(
                    "invalid_query", f"filters: no segment {segment_id}", details={"part": "filters"}
                ) from None
        stamps = ",".join(f"{s.id}@{s.updated_at.isoformat()}" for s in segments.values())
        digest = hashlib.blake2b(f"{query.normalised()}|{stamps}".encode(), digest_size=16).hexdigest()
        key = redis_keys.query_answer(company_id, digest)
        found: list[bytes | None] = self.redis.mget(redis_keys.rollup_version(company_id), key)
        version, cached = found[0] or b"none", found[1]
        if cached is not None:
            stamp, fresh_until, answer = cached.split(b"\n", 2)
            if stamp == version and float(fresh_until) > time.time():
                return answer
            # Stale: one request recomputes it; the others answer the stale one meanwhile, rather
            # than all asking ClickHouse the same question at once.
            refresh = redis_keys.query_refresh(company_id, digest)
            if not self.redis.set(refresh, b"1", nx=True, ex=self.settings.query_timeout_seconds + 5):
                return answer
        answer, settled = self.compute(company_id, query, segments, now)
        seconds = self.settings.analytics_cache_seconds if settled else self.settings.query_live_cache_seconds
        fresh_until = str(time.time() + seconds).encode()
        self.redis.set(key, b"\n".join((version, fresh_until, answer)), ex=self.settings.analytics_cache_seconds)
        if cached is not None:
            self.redis.delete(redis_keys.query_refresh(company_id, digest))
        return answer

    def compute(
        self, company_id: str, query: Query, segments: dict[str, Segment], now: dt.datetime
    ) -> tuple[bytes, bool]:
        """The answer's JSON, and whether it is settled (it ends before the rollups' watermark)."""
        reader = RollupReader(company_id, self.settings.rollup_hll_lg_k)
        as_of, complete_until = reader.state()
        compiler = Compiler(self.settings, now, company_id, query.timezone.key, segments)
        with self.clickhouse.client() as client:
            start = query.start
            if start is None:
                first = clickhouse_source.first_event(client, self.settings, company_id)
                start = first or local_midnight(now.astimezone(query.timezone).date(), query.timezone)

            def tail(whole: Query, since: dt.datetime) -> clickhouse_source.Rows:
                return clickhouse_source.run(client, self.settings, whole, compiler, since)

            def accepted_since(first: dt.datetime, until: dt.datetime, watermark: dt.datetime) -> bool:
                return clickhouse_source.accepted_since(client, self.settings, company_id, first, until, watermark)

            rows, source = None, "events"
            if rollup_source.can_answer(query):
                rows = rollup_source.answer(
                    reader, query, start, complete_until, self.settings.query_max_rows, tail, accepted_since
                )
                source = "rollups" if rows is not None else source
            if rows is None:
                rows = tail(query, start)
        answer = _json.encode(
            {
                "results": [{"dimensions": list(dims), "metrics": values} for dims, values in rows.rows],
                "meta": {
                    "metrics": list(query.metrics),
                    "dimensions": list(query.dimensions),
                    "source": source,
                    "sampled": False,
                    "total_rows": rows.total_rows,
                },
                "company_id": company_id,
                "from": iso(start),
                "to": iso(query.end),
                "timezone": query.timezone.key,
                "as_of": iso(as_of),
                "complete_until": iso(complete_until),
            }
        )
        return answer, complete_until is not None and query.end <= complete_until
