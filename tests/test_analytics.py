"""The analytics API on rollups of a generated week, against ClickHouse ground truth: overview and
its comparison, series in UTC and in another time zone, breakdowns, active users, sessions, web3,
payments; the parameters' limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from adtivity.cli import run_migrations
from models import redis_keys
from models.clickhouse import clickhouse_client
from models.db import open_database, open_read_database
from rollups.compute import rollup_company_now
from tests.conftest import drop_postgres_database
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain, send, week_of_events

TODAY = dt.datetime.now(dt.UTC).date()
FROM, TO = (TODAY - dt.timedelta(days=7)).isoformat(), (TODAY + dt.timedelta(days=1)).isoformat()


@pytest.fixture
def rolled_up(api, settings, redis_client):
    t = tenant(api)
    other = tenant(api)
    rng = random.Random(3)
    send(api, t.write_key, week_of_events(rng, "x", 600))
    send(api, other.write_key, week_of_events(rng, "y", 100))
    drain(settings, redis_client)
    week = dataclasses.replace(settings, rollup_window_hours=9 * 24)
    for company in (t, other):
        rollup_company_now(week, redis_client, clickhouse_client(settings.clickhouse_url), company.company_id)
    return t


def ask(api, t, endpoint: str, **params):
    answer = api.get(
        f"/v1/companies/{t.company_id}/analytics/{endpoint}", auth=t.read_key, params={"from": FROM, "to": TO, **params}
    )
    assert answer.status_code == 200, answer.text
    return answer.json


class Truth:
    def __init__(self, settings, company_id: str) -> None:
        self.client = clickhouse_client(settings.clickhouse_url)
        self.params = {"c": company_id}
        self.scope = (
            f"company_id = toUUID(%(c)s) AND is_bot = 0 AND event_time >= toDateTime('{FROM} 00:00:00') "
            f"AND event_time < toDateTime('{TO} 00:00:00')"
        )

    def rows(self, query: str) -> list:
        return self.client.query(query.replace("{scope}", self.scope), parameters=self.params).result_rows

    def one(self, query: str):
        return self.rows(query)[0][0]


IDENTITY = "if(user_id != '', user_id, anonymous_id)"


def test_overview_equals_clickhouse_and_compares_with_the_previous_period(rolled_up, api, settings):
    truth = Truth(settings, rolled_up.company_id)
    overview = ask(api, rolled_up, "overview")
    metrics = {name: value["value"] for name, value in overview["metrics"].items()}
    assert metrics["events"] == truth.one("SELECT count() FROM events WHERE {scope}")
    assert metrics["page_views"] == truth.one("SELECT countIf(type = 'page') FROM events WHERE {scope}")
    assert metrics["users"] == truth.one(f"SELECT uniqExact({IDENTITY}) FROM events WHERE {{scope}}")
    assert metrics["new_users"] == metrics["users"]  # everyone was first seen this week
    assert metrics["sessions"] == truth.one("SELECT uniqExact(session_id) FROM events WHERE {scope}")
    assert overview["metrics"]["events"]["previous"] == 0 and overview["metrics"]["events"]["change"] is None
    assert overview["as_of"] is not None and overview["complete_until"] <= overview["as_of"]
    bots = truth.one(
        "SELECT count() FROM events WHERE {scope}".replace("{scope}", truth.scope.replace("is_bot = 0", "is_bot = 1"))
    )
    assert overview["bot_events_excluded"] == bots > 0  # the week's crawler page views, left out above
    assert ask(api, rolled_up, "breakdown", dimension="page_path")["bot_events_excluded"] == bots
    assert overview["previous"] == {
        "from": (TODAY - dt.timedelta(days=15)).isoformat() + "T00:00:00+00:00",
        "to": FROM + "T00:00:00+00:00",
    }


def test_series_by_day_in_utc_and_in_another_time_zone_and_by_hour(rolled_up, api, settings):
    truth = Truth(settings, rolled_up.company_id)
    utc = ask(api, rolled_up, "timeseries", metric="events", interval="day")
    by_day = dict(
        truth.rows("SELECT toDate(event_time), count() FROM events WHERE {scope} GROUP BY toDate(event_time)")
    )
    assert {dt.date.fromisoformat(p["start"][:10]): p["value"] for p in utc["points"] if p["value"]} == by_day
    assert len(utc["points"]) == 8

    zone = "America/New_York"
    local = ask(
        api,
        rolled_up,
        "timeseries",
        metric="page_views",
        interval="day",
        tz=zone,
        **{"from": f"{FROM}T00:00:00Z", "to": f"{TO}T00:00:00Z"},
    )
    by_local_day = dict(
        truth.rows(
            f"SELECT toDate(event_time, '{zone}') AS d, countIf(type = 'page') FROM events WHERE {{scope}} GROUP BY d"
        )
    )
    assert {dt.date.fromisoformat(p["start"][:10]): p["value"] for p in local["points"] if p["value"]} == {
        day: n for day, n in by_local_day.items() if n
    }
    assert local["points"][0]["start"].endswith("-05:00")

    users = ask(api, rolled_up, "timeseries", metric="users", interval="day")
    assert {p["start"][:10]: p["value"] for p in users["points"] if p["value"]} == {
        day.isoformat(): n
        for day, n in truth.rows(
            f"SELECT toDate(event_time) AS d, uniqExact({IDENTITY}) FROM events WHERE {{scope}} GROUP BY d"
        )
    }

    hours = ask(api, rolled_up, "timeseries", metric="events", interval="hour")
    assert len(hours["points"]) == 8 * 24
    assert sum(p["value"] for p in hours["points"]) == truth.one("SELECT count() FROM events WHERE {scope}")
    weeks = ask(api, rolled_up, "timeseries", metric="bounce_rate", interval="week")
    assert all(p["value"] is None or 0 <= p["value"] <= 1 for p in weeks["points"])


def test_breakdowns_and_regions(rolled_up, api, settings):
    truth = Truth(settings, rolled_up.company_id)
    pages = ask(api, rolled_up, "breakdown", dimension="page_path", limit=2)
    expected = truth.rows(
        "SELECT page_path, count() AS n FROM events WHERE {scope} AND type = 'page' "
        "GROUP BY page_path ORDER BY n DESC, page_path LIMIT 2"
    )
    assert [(i["value"], i["amount"]) for i in pages["items"]] == [tuple(row) for row in expected]
    names = ask(api, rolled_up, "breakdown", dimension="name")
    assert {i["value"]: i["amount"] for i in names["items"]} == dict(
        truth.rows("SELECT name, count() FROM events WHERE {scope} AND type = 'track' GROUP BY name")
    )
    assert ask(api, rolled_up, "regions")["dimension"] == "country"


def test_active_users(rolled_up, api, settings):
    truth = Truth(settings, rolled_up.company_id)
    answer = ask(api, rolled_up, "active-users")
    assert answer["estimated"] is True  # sketches: exact only while counts are small, as here
    points = answer["points"]
    daily = dict(
        truth.rows(f"SELECT toDate(event_time) AS d, uniqExact({IDENTITY}) FROM events WHERE {{scope}} GROUP BY d")
    )
    assert {dt.date.fromisoformat(p["day"]): p["dau"] for p in points if p["dau"]} == daily
    last = points[-1]
    assert last["wau"] == truth.one(
        f"SELECT uniqExact({IDENTITY}) FROM events WHERE {{scope}} "
        f"AND event_time >= toDateTime('{TODAY - dt.timedelta(days=6)} 00:00:00')"
    )
    assert last["mau"] == truth.one(f"SELECT uniqExact({IDENTITY}) FROM events WHERE {{scope}}")


def test_sessions_web3_and_payments(rolled_up, api, settings):
    truth = Truth(settings, rolled_up.company_id)
    sessions = ask(api, rolled_up, "sessions")
    assert sessions["sessions"] == truth.one("SELECT uniqExact(session_id) FROM events WHERE {scope}")
    web3 = ask(api, rolled_up, "web3", limit=2)
    assert web3["wallets"] == truth.one(
        "SELECT uniqExact(lower(wallet_address)) FROM events WHERE {scope} AND wallet_address != ''"
    )
    assert {(t["chain_id"], t["status"], t["count"]) for t in web3["transactions"]} == {
        tuple(row)
        for row in truth.rows(
            "SELECT chain_id, status, count() FROM events WHERE {scope} "
            "AND type = 'transaction' GROUP BY chain_id, status"
        )
    }
    assert {(v["chain_id"], v["token"], float(v["volume"])) for v in web3["volume"]} == {
        tuple(row)
        for row in truth.rows(
            "SELECT chain_id, token, sum(tx_value_num) FROM events WHERE {scope} "
            "AND type = 'transaction' GROUP BY chain_id, token"
        )
    }
    assert len(web3["top_contracts"]) == 2 and len(web3["top_wallets"]) == 2
    payments = ask(api, rolled_up, "payments")
    assert payments["completed"] == truth.one(
        "SELECT countIf(status = 'completed') FROM events WHERE {scope} AND type = 'payment'"
    )
    assert payments["failed"] == truth.one(
        "SELECT countIf(status = 'failed') FROM events WHERE {scope} AND type = 'payment'"
    )
    assert {r["currency"]: r["amount"] for r in payments["revenue"]} == {
        currency: format(amount.normalize(), "f")
        for currency, amount in truth.rows(
            "SELECT currency, sum(amount) FROM events WHERE {scope} AND type = 'payment' AND status = 'completed' "
            "GROUP BY currency"
        )
    }


def test_a_new_company_answers_zeros_complete_since_its_creation(api):
    """Nothing was accepted for a company before it was created: its empty rollups are complete until
    then, which a dashboard tells from "not computed" (a null)."""
    before = dt.datetime.now(dt.UTC)
    t = tenant(api)
    overview = ask(api, t, "overview")
    assert before <= dt.datetime.fromisoformat(overview["complete_until"]) <= dt.datetime.now(dt.UTC)
    assert overview["as_of"] == overview["complete_until"]
    assert overview["metrics"]["events"]["value"] == 0 and overview["metrics"]["users"]["value"] == 0


@pytest.mark.parametrize(
    "endpoint, params",
    [
        ("overview", {"tz": "Mars/Olympus"}),
        ("overview", {"from": "yesterday"}),
        ("overview", {"from": TO, "to": FROM}),
        ("overview", {"from": "2020-01-01", "to": "2022-01-01"}),
        ("timeseries", {"metric": "bogus"}),
        ("timeseries", {"interval": "fortnight"}),
        ("timeseries", {"interval": "hour", "from": "2026-01-01", "to": "2026-03-01"}),
        ("breakdown", {"dimension": "shoe_size"}),
        ("breakdown", {"dimension": "page_path", "limit": 101}),
    ],
)
def test_bad_parameters_answer_400(api, endpoint, params):
    t = tenant(api)
    answer = api.get(f"/v1/companies/{t.company_id}/analytics/{endpoint}", auth=t.read_key, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] in ("invalid_parameter", "invalid_query")


def test_answers_are_cached_until_the_next_rollup_run_replaces_them(rolled_up, api, settings, redis_client):
    first = ask(api, rolled_up, "overview")["metrics"]["events"]["value"]
    send(
        api,
        rolled_up.write_key,
        [
            {
                "type": "track",
                "name": "More",
                "anonymous_id": "m",
                "message_id": f"more-{i}",
                "context": {"userAgent": CHROME},
            }
            for i in range(4)
        ],
    )
    drain(settings, redis_client)
    assert ask(api, rolled_up, "overview")["metrics"]["events"]["value"] == first  # the rollups are unchanged
    rollup_company_now(settings, redis_client, clickhouse_client(settings.clickhouse_url), rolled_up.company_id)
    assert ask(api, rolled_up, "overview")["metrics"]["events"]["value"] == first + 4


def test_analytics_read_the_rollups_from_the_read_database_when_one_is_set(
    rolled_up, settings, with_settings, redis_client
):
    """DATABASE_READ_URL (a replica in production): the rollups are read there. Here it is a second,
    empty database with the same schema: there the rollups have not run, so the engine counts from
    ClickHouse, and the figures only the rollups hold (the bots left out) are 0; on the primary the
    rollups answer."""
    replica = settings.database_url + "_replica"
    drop_postgres_database(replica)
    run_migrations(dataclasses.replace(settings, database_url=replica))
    open_database(settings.database_url)  # run_migrations bound the models to the new database
    try:
        replicated = ask(with_settings(database_read_url=replica), rolled_up, "overview")
        cached = redis_client.keys(redis_keys.query_answer(rolled_up.company_id, "*"))
        redis_client.delete(*cached)  # the answer cache, which both would share
        on_primary = ask(with_settings(), rolled_up, "overview")
        assert replicated["as_of"] is None and replicated["bot_events_excluded"] == 0
        assert on_primary["as_of"] is not None and on_primary["bot_events_excluded"] > 0
        assert replicated["metrics"]["events"] == on_primary["metrics"]["events"]
    finally:
        open_read_database("")
        drop_postgres_database(replica)
