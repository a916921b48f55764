"""Running a query for a company: check it, resolve its segments, answer it from the rollups when they
hold it exactly or else from ClickHouse, and cache the answer in Redis stamped with the rollups'
version (queries/cache.py: a rollup run makes new answers at once). An answer that reaches past the
rollups' watermark is fresh only QUERY_LIVE_CACHE_SECONDS, so "today" keeps moving.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from adtivity.errors import NotFound, Unprocessable
from adtivity.settings import Settings
from models.clickhouse import ClientPool
from models.segments import Segment
from queries import clickhouse_source, rollup_source
from queries.cache import AnswerCache
from queries.rollup_reader import RollupReader
from queries.segments import company_segment
from queries.spec import Query, local_midnight, parse_query
from queries.sql import Compiler

_json = msgspec.json.Encoder()


def iso(moment: dt.datetime | None, tz: dt.tzinfo = dt.UTC) -> str | None:
    """A naive moment in `tz` (UTC unless told) as ISO 8601 with its offset; None stays None."""
    return moment.replace(tzinfo=tz).isoformat() if moment else None


@dataclass(frozen=True)
class Evaluation:
    """A query's rows, where they came from ("rollups" or "events"), and how fresh the rollups were."""

    rows: clickhouse_source.Rows
    source: str
    start: dt.datetime  # the range's start as answered (the first event's day for "all")
    end: dt.datetime
    as_of: dt.datetime | None
    complete_until: dt.datetime | None

    @property
    def settled(self) -> bool:
        """It ends before the rollups' watermark, so it changes only with them."""
        return self.complete_until is not None and self.end <= self.complete_until


class QueryEngine:
    def __init__(
        self, settings: Settings, redis: Any, clickhouse: ClientPool, clock: Callable[[], dt.datetime]
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.clickhouse = clickhouse
        self.clock = clock  # aware UTC now
        self.cache = AnswerCache(settings, redis)

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
        # The query's repr says all it asks (a frozen dataclass); a changed segment makes a new question.
        stamps = ",".join(f"{s.id}@{s.updated_at.isoformat()}" for s in segments.values())
        return self.cache.answer(
            company_id, f"query|{query!r}|{stamps}", lambda: self.compute(company_id, query, segments, now)
        )

    def evaluate(
        self,
        company_id: str,
        query: Query,
        segments: dict[str, Segment] | None = None,
        now: dt.datetime | None = None,
        state: tuple[dt.datetime | None, dt.datetime | None] | None = None,
    ) -> Evaluation:
        """The query's rows, from the rollups when they hold them exactly, else from ClickHouse (`now`:
        the moment the query was read at, else the clock's; `state`: the rollups' (as_of,
        complete_until) when the caller read it already, so that its questions share one)."""
        now = now or self.clock()
        reader = RollupReader(company_id, self.settings.rollup_hll_lg_k)
        as_of, complete_until = state or reader.state()
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
        return Evaluation(rows, source, start, query.end, as_of, complete_until)

    def compute(
        self, company_id: str, query: Query, segments: dict[str, Segment], now: dt.datetime
    ) -> tuple[bytes, bool]:
        """The answer's JSON, and whether it is settled (it ends before the rollups' watermark)."""
        found = self.evaluate(company_id, query, segments, now)
        answer = _json.encode(
            {
                "results": [{"dimensions": list(dims), "metrics": values} for dims, values in found.rows.rows],
                "meta": {
                    "metrics": list(query.metrics),
                    "dimensions": list(query.dimensions),
                    "source": found.source,
                    "sampled": False,
                    "total_rows": found.rows.total_rows,
                },
                "company_id": company_id,
                "from": iso(found.start),
                "to": iso(query.end),
                "timezone": query.timezone.key,
                "as_of": iso(found.as_of),
                "complete_until": iso(found.complete_until),
            }
        )
        return answer, found.settled
