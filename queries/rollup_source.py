"""Answering a query from the Postgres rollups, when they hold the answer exactly: no filters or
segments; events, page views and new users in total or by a time dimension, or events by one dimension the
rollups keep (type, referrer, UTM source or campaign, country, browser, OS, device) unless a bucket
of the range had to fold values into "(other)". Hours after the rollups' watermark (`complete_until`)
come from ClickHouse with the same query and are added in, so "today" is never behind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from models.rollups import OTHER
from queries.clickhouse_source import Rows
from queries.rollup_reader import Range, RollupReader
from queries.spec import Query
from queries.vocabulary import TIME_DIMENSIONS

ADDITIVE = ("events", "page_views", "new_users")  # a person is new in the one hour of their first event
# Query dimension -> the rollups' dimension of the events metric.
BREAKDOWNS = {
    "event:type": "type",
    "referrer_domain": "referrer_domain",
    "utm_source": "utm_source",
    "utm_campaign": "utm_campaign",
    "country": "country",
    "browser": "browser",
    "os": "os",
    "device": "device",
}
Key = tuple[str, ...]


def can_answer(query: Query) -> bool:
    if query.filters or len(query.dimensions) > 1:
        return False
    if not query.dimensions or query.dimensions[0] in TIME_DIMENSIONS:
        return set(query.metrics) <= set(ADDITIVE)
    return query.dimensions[0] in BREAKDOWNS and query.metrics == ("events",)


def local_label(moment: dt.datetime, interval: str) -> str:
    return moment.strftime("%Y-%m-%d %H:00:00") if interval == "hour" else moment.date().isoformat()


def rollup_rows(reader: RollupReader, query: Query, span: Range, most: int) -> dict[Key, list[int]] | None:
    """Every row of the query over `span` from the rollups; None when they cannot say exactly."""
    if not query.dimensions:
        totals = reader.totals(span, query.metrics)
        return {(): [int(totals[metric]) for metric in query.metrics]}
    dimension = query.dimensions[0]
    if dimension in TIME_DIMENSIONS:
        interval = dimension.partition(":")[2]
        series = reader.series(span, tuple(dict.fromkeys(("events", *query.metrics))), interval)
        return {
            (local_label(bucket, interval),): [int(series[metric].get(bucket, Decimal(0))) for metric in query.metrics]
            for bucket, events in series["events"].items()
            if events
        }
    found = reader.breakdown(span, "events", BREAKDOWNS[dimension], most + 1)
    if len(found) > most or any(value == OTHER for value, _ in found):
        return None
    return {(value,): [int(amount)] for value, amount in found}


def answer(
    reader: RollupReader,
    query: Query,
    start: dt.datetime,
    watermark: dt.datetime | None,
    most: int,
    tail: Callable[[Query, dt.datetime], Rows],
    accepted_since: Callable[[dt.datetime, dt.datetime, dt.datetime], bool],
) -> Rows | None:
    """The query's rows over [start, query.end): the rollups up to the watermark's hour, `tail` (the
    ClickHouse source over [moment, query.end)) after it. None when the rollups cannot say exactly:
    among them, when an event of their part was accepted after the watermark (`accepted_since`:
    late or imported, not in the rollups yet)."""
    until = min(query.end, watermark.replace(minute=0, second=0, microsecond=0)) if watermark else start
    if watermark is None or until <= start or accepted_since(start, until, watermark):
        return None
    merged = rollup_rows(reader, query, Range(start, until, query.timezone), most)
    if merged is None:
        return None
    if until < query.end:
        whole = dataclasses.replace(query, limit=most, offset=0)
        for dimensions, values in tail(whole, until).rows:
            row = merged.setdefault(dimensions, [0] * len(values))
            merged[dimensions] = [a + b for a, b in zip(row, values, strict=True)]
    if not query.dimensions:
        return Rows([((), merged[()])], 1)
    ordered = sorted(merged.items(), key=sort_key(query))
    return Rows(ordered[query.offset : query.offset + query.limit], len(ordered))


def sort_key(query: Query) -> Callable[[tuple[Key, list[int]]], tuple[object, ...]]:
    """The query's order: metrics compare as numbers (negated for desc), the dimension as text."""
    by_position = {metric: i for i, metric in enumerate(query.metrics)}

    def key(row: tuple[Key, list[int]]) -> tuple[object, ...]:
        dimensions, values = row
        parts: list[object] = []
        for name, direction in query.order_by:
            if name in query.dimensions:
                text = dimensions[query.dimensions.index(name)]
                parts.append(Descending(text) if direction == "desc" else text)
            else:
                number = values[by_position[name]]
                parts.append(-number if direction == "desc" else number)
        return tuple(parts)

    return key


@dataclasses.dataclass(frozen=True)
class Descending:
    """Text that sorts backwards."""

    text: str

    def __lt__(self, other: Descending) -> bool:
        return self.text > other.text
