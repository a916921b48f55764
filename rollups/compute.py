"""Recomputing a company's rollups (models/rollups.py) from ClickHouse over a trailing window, so late
events land and deleted ones leave. Used by the worker's actors (workers/rollups.py), the privacy
requests and the operator CLI's `rebuild-rollups`.

A run reads ClickHouse from the start of the UTC day
the window (ROLLUP_WINDOW_HOURS) begins in, builds every hourly row and sketch from it and every
daily one from the hours, and replaces the company's rows from that day on in one transaction. What
it writes: events (total, by type, name, page, referrer, UTM source and campaign, country, browser,
OS, device), page views (total and by page), sessions, bounces and session seconds (by the hour the
session began; a bounce is a one-event session), new and returning users, users and wallets (sketches
and their estimates), transactions (by chain and status, contract, wallet), volume (by chain and
token), payments (by status) and revenue (completed, by currency), and what the chain says of the
reported transactions (verified transactions and disagreements by chain and state, the confirmed ones'
volume by chain and token). Bots are left out everywhere.
Each dimension keeps its ROLLUP_MAX_VALUES largest values per bucket; the rest are summed as "(other)".

`complete_until` is taken before reading ClickHouse: the time of the oldest events-stream entry not yet
persisted, so every event accepted before it is in the rows.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import struct
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import datasketches
import redis
from clickhouse_connect.driver.client import Client
from psycopg2.extras import execute_values

from adtivity.logs import log_event
from adtivity.metrics import ROLLUP_SECONDS
from adtivity.settings import Settings
from models import redis_keys
from models.accounts import Company
from models.chain import CONFIRMED, UNVERIFIED
from models.db import database
from models.events_table import COMPANY_HUMANS, FIRST_SEEN, IDENTITY, unix_seconds
from models.redis_streams import backlog_since, persisted_watch
from models.rollups import DAY, HOUR, OTHER, USERS, WALLETS, RollupState

log = logging.getLogger(__name__)
# (metric, dimension, expression): counted per hour where the expression is not empty.
COUNTED = (
    ("events", "type", "type"),
    ("events", "name", "if(type IN ('track', 'screen'), name, '')"),
    ("events", "referrer_domain", "referrer_domain"),
    ("events", "utm_source", "utm_source"),
    ("events", "utm_campaign", "utm_campaign"),
    ("events", "country", "country"),
    ("events", "browser", "browser"),
    ("events", "os", "os"),
    ("events", "device", "device"),
    ("page_views", "page_path", "if(type = 'page', if(page_path = '', '/', page_path), '')"),
    ("transactions", "chain_status", "if(type = 'transaction', concat(chain_id, '|', status), '')"),
    ("transactions", "contract_address", "if(type = 'transaction', lower(contract_address), '')"),
    ("transactions", "wallet_address", "if(type = 'transaction', lower(wallet_address), '')"),
    ("payments", "status", "if(type = 'payment', status, '')"),
)
SUMMED = (
    ("volume", "chain_token", "concat(chain_id, '|', token)", "tx_value_num", "type = 'transaction'"),
    ("revenue", "currency", "currency", "amount", "type = 'payment' AND status = 'completed'"),
)
# Each reported transaction once (company, chain, hash), by the hour of its first report in the range,
# beside what the chain says of it: the newest version of its tx_verifications row (no row: state "").
REPORTED_AND_VERIFIED = """
SELECT toStartOfHour(first) AS h, chain_id, chain_state, disagreeing, value_num, tokens, amounts FROM (
    SELECT chain_id, lower(tx_hash) AS tx_hash, min(event_time) AS first FROM events
    WHERE {in_range} AND type = 'transaction' AND tx_hash != '' AND chain_id != '' GROUP BY chain_id, tx_hash
) AS reported ANY LEFT JOIN (
    SELECT chain_id, tx_hash, argMax(state, version) AS chain_state, argMax(disagrees, version) AS disagreeing,
        argMax(value_num, version) AS value_num, argMax(transfer_tokens, version) AS tokens,
        argMax(transfer_amounts, version) AS amounts
    FROM tx_verifications WHERE company_id = toUUID(%(company)s) GROUP BY chain_id, tx_hash
) AS verified USING (chain_id, tx_hash)
"""
Key = tuple[str, str, dt.datetime, str]  # metric, dimension, bucket, value
FAR_FUTURE = dt.datetime(2100, 1, 1)  # the end of an open range


def day_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class Rollup:
    """One run for one company: reads ClickHouse from `start` (a UTC midnight) and holds the rows."""

    def __init__(
        self, settings: Settings, clickhouse: Client, company_id: str, start: dt.datetime, end: dt.datetime = FAR_FUTURE
    ) -> None:
        self.settings = settings
        self.clickhouse = clickhouse
        self.company_id = company_id
        self.start, self.end = start, end
        self.params = {
            "company": company_id,
            "start": unix_seconds(start),
            "end": unix_seconds(end),
        }
        self.hourly: dict[Key, int | Decimal] = defaultdict(int)  # Decimal only for money
        self.sketches: dict[tuple[str, str, dt.datetime], datasketches.hll_sketch] = {}

    def rows(self, query: str) -> list[Any]:
        return list(
            self.clickhouse.query(
                query,
                parameters=self.params,
                settings={"max_execution_time": self.settings.rollup_query_timeout_seconds},
            ).result_rows
        )

    def in_range(self) -> str:
        return f"{COMPANY_HUMANS} AND event_time >= toDateTime(%(start)s) AND event_time < toDateTime(%(end)s)"

    def compute(self) -> None:
        self.add_totals()
        self.add_bots()
        self.add_counts()
        self.add_sums()
        self.add_sessions()
        self.add_distinct(USERS, IDENTITY)
        self.add_distinct(WALLETS, "lower(wallet_address)")
        self.add_new_and_returning()
        self.add_verified()

    def add(self, metric: str, dimension: str, bucket: dt.datetime, value: str, amount: int | Decimal) -> None:
        self.hourly[(metric, dimension, bucket, value)] += amount

    def add_totals(self) -> None:
        for hour, events, pages in self.rows(
            f"SELECT toStartOfHour(event_time) AS h, count(), countIf(type = 'page') "
            f"FROM events WHERE {self.in_range()} GROUP BY h"
        ):
            self.add("events", "", hour, "", events)
            self.add("page_views", "", hour, "", pages)

    def add_bots(self) -> None:
        """Bot events, which every other metric leaves out: answers say how many they left out."""
        for hour, bots in self.rows(
            "SELECT toStartOfHour(event_time) AS h, count() FROM events WHERE company_id = toUUID(%(company)s) "
            "AND is_bot = 1 AND event_time >= toDateTime(%(start)s) AND event_time < toDateTime(%(end)s) GROUP BY h"
        ):
            self.add("bot_events", "", hour, "", bots)

    def add_counts(self) -> None:
        """One query per dimension: each reads only its columns (faster than one ARRAY JOIN of all)."""
        for metric, dimension, expression in COUNTED:
            for hour, value, count in self.rows(
                f"SELECT toStartOfHour(event_time) AS h, {expression} AS v, count() "
                f"FROM events WHERE {self.in_range()} AND v != '' GROUP BY h, v"
            ):
                self.add(metric, dimension, hour, value, count)

    def add_sums(self) -> None:
        for metric, dimension, expression, column, condition in SUMMED:
            for hour, value, total in self.rows(
                f"SELECT toStartOfHour(event_time) AS h, {expression} AS v, sum({column}) FROM events "
                f"WHERE {self.in_range()} AND {condition} GROUP BY h, v"
            ):
                self.add(metric, dimension, hour, value, Decimal(str(total)))

    def add_sessions(self) -> None:
        """By the hour each session began; sessions that began up to a day before `start` are read
        whole, so one crossing midnight is neither cut short nor counted twice."""
        for hour, sessions, bounces, seconds in self.rows(
            "SELECT toStartOfHour(began) AS h, count(), countIf(events = 1), sum(toUInt64(ended - began)) FROM ("
            "  SELECT session_id, min(event_time) AS began, max(event_time) AS ended, count() AS events"
            f"  FROM events WHERE {COMPANY_HUMANS} AND session_id != '' AND event_time >= toDateTime(%(start)s) - 86400"
            "  GROUP BY session_id) WHERE began >= toDateTime(%(start)s) AND began < toDateTime(%(end)s) GROUP BY h"
        ):
            self.add("sessions", "", hour, "", sessions)
            self.add("bounces", "", hour, "", bounces)
            self.add("session_seconds", "", hour, "", seconds)

    def add_distinct(self, metric: str, expression: str) -> None:
        """A sketch per hour of the distinct values, and its estimate as a count. ClickHouse hashes the
        values to 64 bits and removes repeats within each hour; the pairs travel as 12-byte binary rows."""
        body = self.clickhouse.raw_query(
            f"SELECT toUInt32(toStartOfHour(event_time)) AS h, cityHash64({expression}) AS x FROM events "
            f"WHERE {self.in_range()} AND {expression} != '' GROUP BY h, x",
            parameters=self.params,
            fmt="RowBinary",
            settings={"max_execution_time": self.settings.rollup_query_timeout_seconds},
        )
        sketches: dict[int, datasketches.hll_sketch] = {}
        for hour, value in struct.iter_unpack("<IQ", body):
            sketch = sketches.get(hour)
            if sketch is None:
                sketch = sketches[hour] = datasketches.hll_sketch(self.settings.rollup_hll_lg_k)
            sketch.update(value)
        for hour, sketch in sketches.items():
            bucket = dt.datetime.fromtimestamp(hour, dt.UTC).replace(tzinfo=None)
            self.sketches[(HOUR, metric, bucket)] = sketch
            self.add(metric, "", bucket, "", round(sketch.get_estimate()))

    def add_new_and_returning(self) -> None:
        """New users: identities first seen in the hour (identity_first_seen); returning: the rest."""
        for hour, new in self.rows(
            f"SELECT toStartOfHour(first) AS h, count() FROM ({FIRST_SEEN}) WHERE first >= toDateTime(%(start)s) AND first < toDateTime(%(end)s) GROUP BY h"
        ):
            self.add("new_users", "", hour, "", new)
        for (metric, _dimension, bucket, _value), users in list(self.hourly.items()):
            if metric == USERS:
                self.add(
                    "returning_users", "", bucket, "", max(0, users - self.hourly.get(("new_users", "", bucket, ""), 0))
                )

    def add_verified(self) -> None:
        """Reported transactions by chain and what the chain says of them ("unverified" where no
        verifier has answered: chain/verify.py), those the chain disagrees with, and the chain's volume
        of the confirmed ones: the native value ("native") and each ERC-20 transfer (by token address)."""
        for hour, chain, state, disagreeing, value, tokens, amounts in self.rows(
            REPORTED_AND_VERIFIED.format(in_range=self.in_range())
        ):
            label = f"{chain}|{state or UNVERIFIED}"
            self.add("verified_transactions", "", hour, "", 1)
            self.add("verified_transactions", "chain_state", hour, label, 1)
            if disagreeing:
                self.add("disagreements", "", hour, "", 1)
                self.add("disagreements", "chain_state", hour, label, 1)
            if state == CONFIRMED:
                self.add("verified_volume", "chain_token", hour, f"{chain}|native", Decimal(str(value)))
                for token, amount in zip(tokens, amounts, strict=True):
                    self.add("verified_volume", "chain_token", hour, f"{chain}|{token}", Decimal(str(amount)))

    # From hours to days, and the bound on dimension values.
    def daily(self) -> dict[Key, int | Decimal]:
        days: dict[Key, int | Decimal] = defaultdict(int)
        day_of_hour: dict[dt.datetime, dt.datetime] = {}
        for (metric, dimension, bucket, value), amount in self.hourly.items():
            if metric not in (USERS, WALLETS, "returning_users"):
                day = day_of_hour.get(bucket) or day_of_hour.setdefault(bucket, day_of(bucket))
                days[(metric, dimension, day, value)] += amount
        unions: dict[tuple[str, str, dt.datetime], datasketches.hll_union] = {}
        for (_grain, metric, bucket), sketch in self.sketches.items():
            key = (DAY, metric, day_of(bucket))
            union = unions.get(key) or unions.setdefault(key, datasketches.hll_union(self.settings.rollup_hll_lg_k))
            union.update(sketch)
        for (grain, metric, day), union in unions.items():
            self.sketches[(grain, metric, day)] = sketch = union.get_result()
            days[(metric, "", day, "")] = round(sketch.get_estimate())
            if metric == USERS:
                days[("returning_users", "", day, "")] = max(
                    0, days[(metric, "", day, "")] - days.get(("new_users", "", day, ""), 0)
                )
        return days

    def bounded(self, rows: dict[Key, int | Decimal]) -> dict[Key, int | Decimal]:
        """Each (metric, dimension, bucket) keeps its largest ROLLUP_MAX_VALUES values; the rest sum to OTHER."""
        groups: dict[tuple[str, str, dt.datetime], list[tuple[str, int | Decimal]]] = defaultdict(list)
        kept: dict[Key, int | Decimal] = {}
        for (metric, dimension, bucket, value), amount in rows.items():
            if dimension:
                groups[(metric, dimension, bucket)].append((value, amount))
            else:
                kept[(metric, dimension, bucket, value)] = amount
        limit = self.settings.rollup_max_values
        for (metric, dimension, bucket), values in groups.items():
            top = (
                heapq.nsmallest(limit, values, key=lambda item: (-item[1], item[0])) if len(values) > limit else values
            )
            for value, amount in top:
                kept[(metric, dimension, bucket, value)] = amount
            if len(values) > limit:
                kept[(metric, dimension, bucket, OTHER)] = sum(amount for _, amount in values) - sum(
                    amount for _, amount in top
                )
        return kept

    def store(self, complete_until: dt.datetime, client: redis.Redis) -> int:
        """Replaces the company's rows in [start, end), in one transaction, then announces the new
        version (so cached answers are recomputed); returns the rows written."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        counts = [
            (self.company_id, grain, metric, dimension, bucket, value, amount, now)
            for grain, rows in ((HOUR, self.bounded(self.hourly)), (DAY, self.bounded(self.daily())))
            for (metric, dimension, bucket, value), amount in rows.items()
        ]
        sketches = [
            (self.company_id, grain, metric, bucket, sketch.serialize_compact(), now)
            for (grain, metric, bucket), sketch in self.sketches.items()
        ]
        with database.connection_context(), database.atomic():
            cursor = database.cursor()
            for table in ("rollup_counts", "rollup_sketches"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE company_id = %s AND bucket >= %s AND bucket < %s",
                    (self.company_id, self.start, self.end),
                )
            execute_values(
                cursor,
                "INSERT INTO rollup_counts (company_id, grain, metric, dimension, bucket, value, "
                "amount, computed_at) VALUES %s",
                counts,
                page_size=5000,
            )
            execute_values(
                cursor,
                "INSERT INTO rollup_sketches (company_id, grain, metric, bucket, sketch, computed_at) VALUES %s",
                sketches,
                page_size=1000,
            )
            if self.end == FAR_FUTURE:  # a rebuild of past days says nothing of how complete the present is
                RollupState.insert(
                    company_id=self.company_id, complete_until=complete_until, computed_at=now
                ).on_conflict(
                    conflict_target=[RollupState.company_id],
                    update={RollupState.complete_until: complete_until, RollupState.computed_at: now},
                ).execute()
        client.set(redis_keys.rollup_version(self.company_id), now.isoformat())
        return len(counts) + len(sketches)


def persisted_until(settings: Settings, client: redis.Redis) -> dt.datetime:
    """Naive UTC: every event accepted before it is in ClickHouse (the oldest events-stream entry the
    persist pumps have not acknowledged)."""
    return dt.datetime.fromtimestamp(
        backlog_since(client, persisted_watch(settings.stream_shards), time.time()), dt.UTC
    ).replace(tzinfo=None)


def rollup_company_now(
    settings: Settings,
    client: redis.Redis,
    clickhouse: Client,
    company_id: str,
    *,
    now: dt.datetime | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime = FAR_FUTURE,
) -> dict[str, Any]:
    """Recomputes the company's rollups in [start, end): UTC midnights; by default from the day the
    trailing window begins in, on."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    complete_until = persisted_until(settings, client)
    started = time.perf_counter()
    rollup = Rollup(
        settings, clickhouse, company_id, start or day_of(now - dt.timedelta(hours=settings.rollup_window_hours)), end
    )
    rollup.compute()
    written = rollup.store(min(complete_until, now), client)
    ROLLUP_SECONDS.observe(time.perf_counter() - started)
    done = {
        "company": company_id,
        "from": rollup.start.isoformat(),
        "rows": written,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log_event(log, "rollup done", **done)  # type: ignore[arg-type]  # fields, not log_event's options
    return done


def companies_to_roll_up(settings: Settings, client: redis.Redis, clickhouse: Client, *, now: dt.datetime) -> list[str]:
    """Live companies with events since the window began (deleted ones are left out), to be rolled up.
    The others have nothing to roll up: their rollups are recorded as computed now and complete until
    the moment before which every accepted event was in ClickHouse when their events were looked for."""
    complete_until = persisted_until(settings, client)
    since = day_of(now - dt.timedelta(hours=settings.rollup_window_hours))
    with_events = {
        str(row[0])
        for row in clickhouse.query(
            "SELECT DISTINCT company_id FROM events WHERE event_time >= toDateTime(%(since)s)",
            parameters={"since": unix_seconds(since)},
        ).result_rows
    }
    with database.connection_context():
        live = {str(c.id) for c in Company.select(Company.id).where(Company.deleted_at.is_null())}
        quiet = [
            {"company_id": company, "complete_until": min(complete_until, now), "computed_at": now}
            for company in live - with_events
        ]
        for chunk in range(0, len(quiet), 1000):
            RollupState.insert_many(quiet[chunk : chunk + 1000]).on_conflict(
                conflict_target=[RollupState.company_id],
                preserve=[RollupState.complete_until, RollupState.computed_at],
            ).execute()
    return sorted(with_events & live)
