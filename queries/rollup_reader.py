"""Reading the rollups (models/rollups.py) for the analytics API: a time range in the caller's time zone,
sums of counts, series by hour, day, week or month, breakdowns, and distinct counts merged from sketches.

A range is [start, end) in UTC. It reads the daily rows when it is whole UTC days and the time zone is
UTC, else the hourly rows; local buckets come from Postgres' time zone arithmetic on the UTC hours (so
a zone with a half-hour offset sees each hour in the local day it begins in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from models.db import read_database
from models.realtime import estimate_union
from models.rollups import DAY, HOUR

UTC = ZoneInfo("UTC")
INTERVALS = ("hour", "day", "week", "month")


@dataclass(frozen=True)
class Range:
    start: dt.datetime  # naive UTC
    end: dt.datetime
    tz: ZoneInfo

    @property
    def grain(self) -> str:
        whole_days = self.start.time() == dt.time() and self.end.time() == dt.time()
        return DAY if whole_days and self.tz.key == "UTC" else HOUR

    def previous(self) -> Range:
        return Range(self.start - (self.end - self.start), self.start, self.tz)

    def local_buckets(self, interval: str) -> list[dt.datetime]:
        """Every local bucket start the range touches, in order (for series without gaps)."""
        first = truncate(self.start.replace(tzinfo=dt.UTC).astimezone(self.tz).replace(tzinfo=None), interval)
        last = (self.end - dt.timedelta(microseconds=1)).replace(tzinfo=dt.UTC).astimezone(self.tz).replace(tzinfo=None)
        buckets = []
        current = first
        while current <= last:
            buckets.append(current)
            current = advance(current, interval)
        return buckets


def truncate(moment: dt.datetime, interval: str) -> dt.datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if interval == "hour":
        return moment
    moment = moment.replace(hour=0)
    if interval == "week":
        return moment - dt.timedelta(days=moment.weekday())
    if interval == "month":
        return moment.replace(day=1)
    return moment


def advance(moment: dt.datetime, interval: str) -> dt.datetime:
    if interval == "hour":
        return moment + dt.timedelta(hours=1)
    if interval == "day":
        return moment + dt.timedelta(days=1)
    if interval == "week":
        return moment + dt.timedelta(days=7)
    return (moment.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


class RollupReader:
    def __init__(self, company_id: str, lg_k: int) -> None:
        self.company_id = company_id
        self.lg_k = lg_k

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        rows: list[Any] = read_database.execute_sql(sql, params).fetchall()
        return rows

    def state(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(as_of: when the rollups were computed, complete_until: every event accepted before it is in them)."""
        rows = self._rows(
            "SELECT computed_at, complete_until FROM rollup_state WHERE company_id = %s", (self.company_id,)
        )
        return rows[0] if rows else (None, None)

    def totals(self, span: Range, metrics: tuple[str, ...]) -> dict[str, Decimal]:
        rows = self._rows(
            "SELECT metric, sum(amount) FROM rollup_counts WHERE company_id = %s AND grain = %s AND metric = ANY(%s) "
            "AND dimension = '' AND bucket >= %s AND bucket < %s GROUP BY metric",
            (self.company_id, span.grain, list(metrics), span.start, span.end),
        )
        found = dict(rows)
        return {metric: found.get(metric, Decimal(0)) for metric in metrics}

    def series(self, span: Range, metrics: tuple[str, ...], interval: str) -> dict[str, dict[dt.datetime, Decimal]]:
        grain = HOUR if interval == "hour" else span.grain
        rows = self._rows(
            "SELECT metric, date_trunc(%s, (bucket AT TIME ZONE 'UTC') AT TIME ZONE %s) AS local, sum(amount) "
            "FROM rollup_counts WHERE company_id = %s AND grain = %s AND metric = ANY(%s) AND dimension = '' "
            "AND bucket >= %s AND bucket < %s GROUP BY metric, local",
            (interval, span.tz.key, self.company_id, grain, list(metrics), span.start, span.end),
        )
        out: dict[str, dict[dt.datetime, Decimal]] = {metric: {} for metric in metrics}
        for metric, local, amount in rows:
            out[metric][local] = amount
        return out

    def breakdown(self, span: Range, metric: str, dimension: str, limit: int) -> list[tuple[str, Decimal]]:
        return self._rows(
            "SELECT value, sum(amount) AS total FROM rollup_counts WHERE company_id = %s AND grain = %s AND metric = %s "
            "AND dimension = %s AND bucket >= %s AND bucket < %s GROUP BY value ORDER BY total DESC, value LIMIT %s",
            (self.company_id, span.grain, metric, dimension, span.start, span.end, limit),
        )

    def token_symbols(self, chain_tokens: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(chain id, token address) -> the symbol the token's contract gave, for those known."""
        if not chain_tokens:
            return {}
        rows = self._rows(
            "SELECT chain_id, address, symbol FROM chain_tokens WHERE (chain_id, address) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([chain for chain, _ in chain_tokens], [address for _, address in chain_tokens]),
        )
        return {(chain, address): symbol for chain, address, symbol in rows}

    def _sketches(self, span: Range, metric: str, interval: str | None) -> list[tuple[dt.datetime | None, bytes]]:
        grain = HOUR if interval == "hour" else span.grain
        local = "date_trunc(%s, (bucket AT TIME ZONE 'UTC') AT TIME ZONE %s)" if interval else "NULL"
        params = (interval, span.tz.key) if interval else ()
        return self._rows(
            f"SELECT {local}, sketch FROM rollup_sketches WHERE company_id = %s AND grain = %s AND metric = %s "
            "AND bucket >= %s AND bucket < %s",
            (*params, self.company_id, grain, metric, span.start, span.end),
        )

    def estimate(self, sketches: Iterable[bytes]) -> int:
        return estimate_union((bytes(sketch) for sketch in sketches), self.lg_k)

    def distinct(self, span: Range, metric: str) -> int:
        return self.estimate(sketch for _, sketch in self._sketches(span, metric, None))

    def sketches_by_bucket(self, span: Range, metric: str, interval: str) -> dict[dt.datetime, list[bytes]]:
        grouped: dict[dt.datetime, list[bytes]] = {}
        for local, sketch in self._sketches(span, metric, interval):
            if local is not None:  # always, with an interval
                grouped.setdefault(local, []).append(sketch)
        return grouped

    def distinct_series(self, span: Range, metric: str, interval: str) -> dict[dt.datetime, int]:
        return {
            local: self.estimate(sketches)
            for local, sketches in self.sketches_by_bucket(span, metric, interval).items()
        }
