"""Rollups against ClickHouse ground truth on a generated dataset: several companies, a week of events,
duplicates, late events, bots; the trailing window, dimension bounds and complete-until."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from models.clickhouse import clickhouse_client
from models.db import database
from models.rollups import DAY, HOUR, OTHER, RollupCount, RollupState
from rollups.compute import companies_to_roll_up, rollup_company_now
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import NOW, drain, send, week_of_events


def rolled(company_id: str, grain: str) -> dict:
    with database.connection_context():
        return {
            (r.metric, r.dimension, r.bucket, r.value): r.amount
            for r in RollupCount.select().where(RollupCount.company_id == company_id, RollupCount.grain == grain)
        }


def truth(settings, company_id: str, grain: str, since: dt.datetime) -> dict:
    """The same figures straight from ClickHouse, by plain queries."""
    client = clickhouse_client(settings.clickhouse_url)
    bucket = "toStartOfHour(event_time)" if grain == HOUR else "toStartOfDay(event_time)"
    scope = "company_id = toUUID(%(c)s) AND is_bot = 0 AND event_time >= toDateTime(%(since)s)"
    params = {"c": company_id, "since": int(since.replace(tzinfo=dt.UTC).timestamp())}
    out = {}

    def collect(metric: str, dimension: str, query: str) -> None:
        for row in client.query(query, parameters=params).result_rows:
            *key, amount = row
            when, value = (key[0], key[1]) if len(key) == 2 else (key[0], "")
            out[(metric, dimension, when, value)] = Decimal(str(amount))

    collect("events", "", f"SELECT {bucket} b, count() FROM events WHERE {scope} GROUP BY b")
    collect("events", "type", f"SELECT {bucket} b, type, count() FROM events WHERE {scope} GROUP BY b, type")
    collect(
        "page_views",
        "page_path",
        f"SELECT {bucket} b, page_path, count() FROM events WHERE {scope} AND type = 'page' GROUP BY b, page_path",
    )
    collect(
        "users",
        "",
        f"SELECT {bucket} b, uniqExact(if(user_id != '', user_id, anonymous_id)) FROM events WHERE {scope} GROUP BY b",
    )
    collect(
        "transactions",
        "chain_status",
        f"SELECT {bucket} b, concat(chain_id, '|', status), count() FROM events WHERE {scope} AND type = 'transaction' GROUP BY b, chain_id, status",
    )
    collect(
        "volume",
        "chain_token",
        f"SELECT {bucket} b, concat(chain_id, '|', token), sum(tx_value_num) FROM events WHERE {scope} AND type = 'transaction' GROUP BY b, chain_id, token",
    )
    collect(
        "revenue",
        "currency",
        f"SELECT {bucket} b, currency, sum(amount) FROM events WHERE {scope} AND type = 'payment' AND status = 'completed' GROUP BY b, currency",
    )
    collect(
        "payments",
        "status",
        f"SELECT {bucket} b, status, count() FROM events WHERE {scope} AND type = 'payment' GROUP BY b, status",
    )
    return out


def compare(rows: dict, expected: dict) -> None:
    metrics = {(metric, dimension) for metric, dimension, _, _ in expected}
    got = {key: amount for key, amount in rows.items() if (key[0], key[1]) in metrics}
    assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in expected.items()}


@pytest.fixture
def dataset(api, settings, redis_client):
    rng = random.Random(7)
    tenants = [tenant(api) for _ in range(3)]
    for index, t in enumerate(tenants):
        events = week_of_events(rng, f"c{index}", 400)
        send(api, t.write_key, events)
        send(api, t.write_key, events[:50])  # duplicates: stored once
    drain(settings, redis_client)
    return tenants


def test_rollups_equal_clickhouse_per_hour_and_per_day_for_every_company(dataset, settings, redis_client):
    week = dataclasses.replace(settings, rollup_window_hours=8 * 24)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    for t in dataset:
        done = rollup_company_now(week, redis_client, clickhouse, t.company_id)
        since = dt.datetime.fromisoformat(done["from"])
        compare(rolled(t.company_id, HOUR), truth(settings, t.company_id, HOUR, since))
        compare(rolled(t.company_id, DAY), truth(settings, t.company_id, DAY, since))
    with database.connection_context():
        state = RollupState.get(RollupState.company_id == dataset[0].company_id)
    assert state.complete_until <= state.computed_at and state.computed_at >= NOW


def test_late_events_land_on_the_next_run_and_rows_before_the_window_stay(dataset, api, settings, redis_client):
    two_days = dataclasses.replace(settings, rollup_window_hours=48)
    week = dataclasses.replace(settings, rollup_window_hours=8 * 24)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    t = dataset[0]
    rollup_company_now(week, redis_client, clickhouse, t.company_id)
    before = rolled(t.company_id, DAY)
    late_time = NOW - dt.timedelta(hours=30)
    send(
        api,
        t.write_key,
        [
            {
                "type": "track",
                "name": "Late",
                "user_id": "late-user",
                "message_id": f"late-{i}",
                "timestamp": late_time.isoformat() + "Z",
            }
            for i in range(5)
        ],
    )
    drain(settings, redis_client)
    done = rollup_company_now(two_days, redis_client, clickhouse, t.company_id)
    since = dt.datetime.fromisoformat(done["from"])
    after = rolled(t.company_id, DAY)
    late_day = late_time.replace(hour=0, minute=0, second=0)
    assert after[("events", "name", late_day, "Late")] == 5
    assert after[("events", "", late_day, "")] == before[("events", "", late_day, "")] + 5
    assert {k: v for k, v in after.items() if k[2] < since} == {k: v for k, v in before.items() if k[2] < since}
    compare({k: v for k, v in after.items() if k[2] >= since}, truth(settings, t.company_id, DAY, since))


def test_each_dimension_keeps_its_largest_values_and_sums_the_rest(api, settings, redis_client):
    t = tenant(api)
    events = [
        {
            "type": "page",
            "anonymous_id": "a",
            "message_id": f"p{i}",
            "context": {"page": {"path": f"/p{i % 5}"}, "userAgent": CHROME},
        }
        for i in range(15)
    ] + [
        {
            "type": "page",
            "anonymous_id": "a",
            "message_id": "top",
            "context": {"page": {"path": "/p0"}, "userAgent": CHROME},
        }
    ]
    send(api, t.write_key, events)
    drain(settings, redis_client)
    bounded = dataclasses.replace(settings, rollup_max_values=2)
    rollup_company_now(bounded, redis_client, clickhouse_client(settings.clickhouse_url), t.company_id)
    pages = defaultdict(Decimal)
    for (metric, dimension, _, value), amount in rolled(t.company_id, DAY).items():
        if (metric, dimension) == ("page_views", "page_path"):
            pages[value] += amount
    assert pages == {"/p0": 4, "/p1": 3, OTHER: 9}


def test_sessions_new_and_returning_users(api, settings, redis_client):
    t = tenant(api)
    start = NOW.replace(minute=5, second=0) - dt.timedelta(hours=3)  # every event below falls in one hour

    def at(minutes: int) -> str:
        return (start + dt.timedelta(minutes=minutes)).isoformat() + "Z"

    send(
        api,
        t.write_key,
        [
            {
                "type": "page",
                "user_id": "old",
                "message_id": "o1",
                "timestamp": (NOW - dt.timedelta(days=20)).isoformat() + "Z",
                "context": {"userAgent": CHROME},
            },
            {
                "type": "page",
                "user_id": "old",
                "message_id": "o2",
                "timestamp": at(0),
                "context": {"userAgent": CHROME},
            },
            {
                "type": "track",
                "name": "Read",
                "user_id": "old",
                "message_id": "o3",
                "timestamp": at(10),
                "context": {"userAgent": CHROME},
            },
            {
                "type": "page",
                "user_id": "new",
                "message_id": "n1",
                "timestamp": at(1),
                "context": {"userAgent": CHROME},
            },
        ],
    )
    drain(settings, redis_client)
    rollup_company_now(settings, redis_client, clickhouse_client(settings.clickhouse_url), t.company_id)
    hour = start.replace(minute=0, second=0)
    rows = rolled(t.company_id, HOUR)
    assert rows[("sessions", "", hour, "")] == 2
    assert rows[("bounces", "", hour, "")] == 1
    assert rows[("session_seconds", "", hour, "")] == 600
    assert rows[("new_users", "", hour, "")] == 1
    assert rows[("users", "", hour, "")] == 2
    assert rows[("returning_users", "", hour, "")] == 1


def test_a_company_without_events_says_its_rollups_are_complete_not_missing(api, settings, redis_client):
    quiet, busy = tenant(api), tenant(api)
    overview = api.get(f"/v1/companies/{quiet.company_id}/analytics/overview", auth=quiet.read_key).json
    assert overview["metrics"]["events"]["value"] == 0
    assert overview["as_of"] is not None and overview["complete_until"] is not None  # since its creation

    send(api, busy.write_key, [{"type": "track", "name": "Signup", "user_id": "u", "context": {"userAgent": CHROME}}])
    drain(settings, redis_client)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    chosen = companies_to_roll_up(settings, redis_client, clickhouse_client(settings.clickhouse_url), now=now)
    assert busy.company_id in chosen and quiet.company_id not in chosen
    with database.connection_context():
        state = RollupState.get_by_id(quiet.company_id)
    created = dt.datetime.fromisoformat(overview["complete_until"]).replace(tzinfo=None)
    assert state.computed_at == now and created <= state.complete_until <= now
