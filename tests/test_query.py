"""The query API (queries/): filtered and broken-down answers equal a ground truth computed here, in
Python, from the events the test sent (two companies, bots, two time zones); the rollups answer what
they hold exactly; segments filter; bad queries answer 422 naming the part; CSV."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models.clickhouse import clickhouse_client
from rollups.compute import rollup_company_now
from tests.ingest_helpers import CHROME, GOOGLEBOT, tenant
from tests.pipeline_helpers import drain

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
UTC = ZoneInfo("UTC")
BROWSER = {CHROME: "Chrome", FIREFOX: "Firefox"}
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
DAYS = 4
FROM = (NOW - dt.timedelta(days=DAYS + 1)).date()
TO = (NOW + dt.timedelta(days=1)).date()


@dataclasses.dataclass
class Sent:
    """One event as sent, with what it means (the ground truth's view of it)."""

    body: dict
    country: str
    time: dt.datetime
    identity: str
    session: str
    bot: bool
    browser: str
    path: str
    campaign: str


def generate(rng: random.Random, prefix: str, n: int) -> list[Sent]:
    sent = []
    for i in range(n):
        person = rng.randrange(30)
        identity = f"{prefix}u{person}" if person < 15 else f"{prefix}a{person}"
        moment = NOW - dt.timedelta(seconds=rng.randrange(DAYS * 86400))
        agent = GOOGLEBOT if rng.random() < 0.05 else rng.choice([CHROME, FIREFOX])
        path, campaign = (
            rng.choice(["/", "/pricing", "/docs/intro", "/docs/api"]),
            rng.choice(["", "nov-launch", "winter"]),
        )
        session = f"{prefix}s{person}-{rng.randrange(3)}"
        body = {
            "message_id": f"{prefix}-{i}",
            "timestamp": moment.isoformat() + "Z",
            ("user_id" if person < 15 else "anonymous_id"): identity,
            "session_id": session,
            "context": {"userAgent": agent, "page": {"path": path}, "campaign": {"name": campaign} if campaign else {}},
        }
        kind = rng.random()
        if kind < 0.4:
            body["type"] = "page"
        elif kind < 0.7:
            body |= {
                "type": "track",
                "name": rng.choice(["Signup", "Search", "Swap"]),
                "properties": {"plan": rng.choice(["pro", "free"]), "meta": {"tier": rng.choice(["a", "b"])}, "n": 3},
            }
        elif kind < 0.85:
            body |= {
                "type": "transaction",
                "chain_id": rng.choice(["1", "8453"]),
                "status": "confirmed",
                "wallet_address": f"0x{rng.randrange(6):040X}",
                "tx_hash": f"0x{i:064x}",
                "value": str(rng.randrange(1, 1000)),
                "token": "ETH",
            }
        else:
            body |= {
                "type": "payment",
                "payment_id": f"{prefix}p{i}",
                "status": rng.choice(["completed", "failed"]),
                "amount": f"{rng.randrange(1, 100)}.{rng.randrange(100):02d}",
                "currency": rng.choice(["USD", "EUR"]),
            }
        country = rng.choice(["DE", "FR", "US"])
        sent.append(
            Sent(body, country, moment, identity, session, agent == GOOGLEBOT, BROWSER.get(agent, ""), path, campaign)
        )
    return sent


def send(api, key: str, events: list[Sent]) -> None:
    by_country = defaultdict(list)
    for event in events:
        by_country[event.country].append(event.body)
    for country, bodies in by_country.items():
        for start in range(0, len(bodies), 200):
            answer = api.post(
                "/v1/events", auth=key, json=bodies[start : start + 200], headers={"CF-IPCountry": country}
            )
            assert answer.status_code == 200, answer.text


def value_of(event: Sent, dimension: str, tz: ZoneInfo) -> str:
    body = event.body
    local = event.time.replace(tzinfo=dt.UTC).astimezone(tz)
    return {
        "time:day": lambda: local.date().isoformat(),
        "time:hour": lambda: local.strftime("%Y-%m-%d %H:00:00"),
        "time:week": lambda: (local.date() - dt.timedelta(days=local.weekday())).isoformat(),
        "country": lambda: event.country,
        "browser": lambda: event.browser,
        "page_path": lambda: event.path,
        "utm_campaign": lambda: event.campaign,
        "event:type": lambda: body["type"],
        "event:name": lambda: body.get("name", ""),
        "property:plan": lambda: body.get("properties", {}).get("plan", ""),
        "property:meta.tier": lambda: body.get("properties", {}).get("meta", {}).get("tier", ""),
        "property:n": lambda: "3" if "properties" in body else "",
        "chain": lambda: body.get("chain_id", ""),
        "currency": lambda: body.get("currency", ""),
    }[dimension]()


def truth(events: list[Sent], metrics, dimensions, keep, tz: ZoneInfo = UTC) -> dict:
    """What the query must answer: rows by dimension values, computed from the sent events."""
    start = dt.datetime.combine(FROM, dt.time(), tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)
    end = dt.datetime.combine(TO + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)
    in_range = [e for e in events if not e.bot and start <= e.time < end]
    everyone = {e.identity for e in in_range}
    first_seen = {}
    for event in sorted((e for e in events if not e.bot), key=lambda e: e.time):
        first_seen.setdefault(event.identity, event.time)
    groups = defaultdict(list)
    for event in in_range:
        if keep(event):
            key = tuple(value_of(event, d, tz) for d in dimensions)
            if all(v != "" for d, v in zip(dimensions, key, strict=True) if not d.startswith("time:")):
                groups[key].append(event)
    rows = {}
    for key, group in groups.items():
        sessions = defaultdict(list)
        for event in group:
            sessions[event.session].append(event.time)
        bounces = sum(len(times) == 1 for times in sessions.values())
        seconds = sum((max(times) - min(times)).total_seconds() for times in sessions.values())
        users = len({e.identity for e in group})
        new_users = len({e.identity for e in group if e.time == first_seen[e.identity]})
        completed = [e.body for e in group if e.body["type"] == "payment" and e.body["status"] == "completed"]
        revenue = sum((Decimal(b["amount"]) for b in completed), Decimal(0))
        figures = {
            "events": len(group),
            "users": users,
            "new_users": new_users,
            "returning_users": users - new_users,
            "payments": sum(e.body["type"] == "payment" for e in group),
            "page_views": sum(e.body["type"] == "page" for e in group),
            "sessions": len(sessions),
            "bounce_rate": round(bounces / len(sessions), 4),
            "avg_session_seconds": round(seconds / len(sessions), 4),
            "wallets": len({e.body["wallet_address"].lower() for e in group if "wallet_address" in e.body}),
            "transactions": sum(e.body["type"] == "transaction" for e in group),
            "volume": float(sum(int(e.body["value"]) for e in group if e.body["type"] == "transaction")),
            "revenue": format(revenue.normalize(), "f") if revenue else "0",
            "conversion_rate": round(users / len(everyone), 4),
        }
        rows[key] = [figures[m] for m in metrics]
    return rows


@pytest.fixture
def company(api, settings, redis_client):
    rng = random.Random(23)
    t, other = tenant(api), tenant(api)
    events = generate(rng, "q", 700)
    send(api, t.write_key, events)
    send(api, other.write_key, generate(rng, "o", 200))
    drain(settings, redis_client)
    return t, events


def query(api, t, body: dict, **options):
    answer = api.post(f"/v1/companies/{t.company_id}/query", auth=t.read_key, json=body, **options)
    assert answer.status_code == 200, answer.text
    return answer.json


def rows_of(answer: dict) -> dict:
    return {tuple(row["dimensions"]): row["metrics"] for row in answer["results"]}


RANGE = [FROM.isoformat(), TO.isoformat()]
ALL = [
    "events",
    "users",
    "new_users",
    "returning_users",
    "page_views",
    "payments",
    "sessions",
    "bounce_rate",
    "avg_session_seconds",
    "conversion_rate",
]


def test_two_filters_by_day_in_berlin_equal_the_ground_truth(company, api):
    t, events = company
    body = {
        "metrics": ALL,
        "date_range": RANGE,
        "dimensions": ["time:day", "country"],
        "filters": [["is", "country", ["DE", "FR"]], ["contains", "page_path", ["/docs"]]],
        "timezone": "Europe/Berlin",
        "limit": 1000,
    }
    answer = query(api, t, body)
    expected = truth(
        events,
        ALL,
        ["time:day", "country"],
        lambda e: e.country in ("DE", "FR") and "/docs" in e.path,
        ZoneInfo("Europe/Berlin"),
    )
    assert rows_of(answer) == expected and len(expected) > 6
    assert answer["meta"]["source"] == "events" and answer["meta"]["total_rows"] == len(expected)
    assert [tuple(row["dimensions"]) for row in answer["results"]] == sorted(expected)  # time ascending, then country
    assert answer["timezone"] == "Europe/Berlin" and answer["meta"]["sampled"] is False


def test_properties_logic_and_regular_expressions(company, api):
    t, events = company
    metrics = ["events", "users"]
    cases = [
        (
            [["is", "property:plan", ["pro"]], ["not", [["is", "event:name", ["Search"]]]]],
            ["property:meta.tier"],
            lambda e: e.body.get("properties", {}).get("plan") == "pro" and e.body.get("name") != "Search",
        ),
        (
            [["or", [["matches", "page_path", ["^/docs/a"]], ["is_not", "browser", ["Chrome"]]]]],
            ["event:type", "browser"],
            lambda e: e.path.startswith("/docs/a") or e.browser != "Chrome",
        ),
        (
            [["contains_not", "utm_campaign", ["nov"]], ["matches_not", "event:name", ["^S"]]],
            ["utm_campaign"],
            lambda e: "nov" not in e.campaign and not e.body.get("name", "").startswith("S"),
        ),
        ([["is", "property:n", ["3"]]], ["event:name"], lambda e: "properties" in e.body),
    ]
    for filters, dimensions, keep in cases:
        answer = query(api, t, {"metrics": metrics, "date_range": RANGE, "dimensions": dimensions, "filters": filters})
        expected = truth(events, metrics, dimensions, keep)
        assert rows_of(answer) == expected and expected, filters
        ordered = [row["metrics"][0] for row in answer["results"]]
        assert ordered == sorted(ordered, reverse=True)  # by the first metric, descending


def test_web3_and_money_metrics_with_order_limit_and_offset(company, api):
    t, events = company
    metrics = ["wallets", "transactions", "volume", "events"]
    answer = query(api, t, {"metrics": metrics, "date_range": RANGE, "dimensions": ["chain"]})
    assert rows_of(answer) == truth(events, metrics, ["chain"], lambda e: True)
    revenue = query(api, t, {"metrics": ["revenue"], "date_range": RANGE, "dimensions": ["currency"]})
    assert rows_of(revenue) == truth(events, ["revenue"], ["currency"], lambda e: True)
    body = {
        "metrics": ["events"],
        "date_range": RANGE,
        "dimensions": ["time:hour"],
        "order_by": [["events", "asc"], ["time:hour", "desc"]],
        "limit": 5,
        "offset": 3,
    }
    page = query(api, t, body)
    expected = sorted(
        truth(events, ["events"], ["time:hour"], lambda e: True).items(), key=lambda r: r[0], reverse=True
    )
    expected.sort(key=lambda row: row[1][0])
    assert [(tuple(r["dimensions"]), r["metrics"]) for r in page["results"]] == expected[3:8], page
    assert page["meta"]["total_rows"] == len(expected)


def test_the_rollups_answer_what_they_hold_exactly_and_clickhouse_the_rest(company, api, settings, redis_client):
    t, events = company
    week = dataclasses.replace(settings, rollup_window_hours=7 * 24)
    time.sleep(1.1)  # received_at holds whole seconds: the watermark must fall in a later one
    rollup_company_now(week, redis_client, clickhouse_client(settings.clickhouse_url), t.company_id)
    by_country = query(api, t, {"metrics": ["events"], "date_range": RANGE, "dimensions": ["country"]})
    assert by_country["meta"]["source"] == "rollups"
    assert rows_of(by_country) == truth(events, ["events"], ["country"], lambda e: True)
    additive = ["events", "page_views", "new_users"]
    by_day = query(api, t, {"metrics": additive, "date_range": RANGE, "dimensions": ["time:day"]})
    assert by_day["meta"]["source"] == "rollups"
    assert rows_of(by_day) == truth(events, additive, ["time:day"], lambda e: True)
    new_york = ZoneInfo("America/New_York")
    weekly = {"metrics": ["events"], "date_range": RANGE, "dimensions": ["time:week"], "timezone": new_york.key}
    by_week = query(api, t, {**weekly, "order_by": [["time:week", "desc"]]})
    assert by_week["meta"]["source"] == "rollups"
    assert rows_of(by_week) == truth(events, ["events"], ["time:week"], lambda e: True, new_york)
    weeks = [row["dimensions"][0] for row in by_week["results"]]
    assert weeks == sorted(weeks, reverse=True)
    # Events stored after the rollups ran are counted at once (from ClickHouse, after the watermark).
    late = generate(random.Random(5), "late", 40)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)  # not NOW: an hour may have begun since
    for event in late:
        event.time = now
        event.body["timestamp"] = now.isoformat() + "Z"
    send(api, t.write_key, late)
    drain(settings, redis_client)
    body = {"metrics": ["events", "new_users"], "date_range": RANGE, "limit": 7}  # a new question: not cached
    total = query(api, t, body)
    assert total["meta"]["source"] == "rollups"
    humans = [e for e in events + late if not e.bot]
    assert total["results"][0]["metrics"] == [len(humans), len({e.identity for e in humans})]
    filtered = query(api, t, {**body, "filters": [["is", "country", ["DE"]]]})
    assert filtered["meta"]["source"] == "events"


def test_segments_filter_queries_and_have_a_size(company, api):
    t, events = company
    member = api.user()
    api.post(f"/v1/companies/{t.company_id}/invites", auth=t.owner, json={"email": member.email, "role": "member"})
    rule = {"did": {"event": "Swap", "min_times": 2, "filters": [["is", "property:plan", ["pro"]]]}}
    created = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "Pro swappers", "kind": "rule", "rule": rule},
    )
    assert created.status_code == 201, created.text
    swaps = defaultdict(int)
    for e in events:
        if not e.bot and e.body.get("name") == "Swap" and e.body["properties"]["plan"] == "pro":
            swaps[e.identity] += 1
    swappers = {who for who, n in swaps.items() if n >= 2}
    assert swappers
    answer = query(
        api, t, {"metrics": ["users", "events"], "date_range": RANGE, "filters": [["in_segment", created.json["id"]]]}
    )
    assert answer["results"][0]["metrics"] == [len(swappers), sum(not e.bot and e.identity in swappers for e in events)]
    static = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "Two", "kind": "static", "user_ids": "user_id\nqu1\nqu2\n"},
    )
    assert static.status_code == 201 and static.json["user_ids"] == ["qu1", "qu2"]
    wallet = f"0x{1:040X}"
    by_wallet = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "W", "kind": "static", "wallets": [wallet]},
    ).json
    holders = {e.identity for e in events if not e.bot and e.body.get("wallet_address") == wallet}
    for segment, people in ((static.json, {"qu1", "qu2"}), (by_wallet, holders)):
        body = {
            "metrics": ["users"],
            "date_range": RANGE,
            "dimensions": ["event:type"],
            "filters": [["in_segment", segment["id"]]],
        }
        assert rows_of(query(api, t, body)) == truth(
            events, ["users"], ["event:type"], lambda e, p=people: e.identity in p
        )
    either = [["or", [["in_segment", static.json["id"]], ["in_segment", by_wallet["id"]]]]]
    answer = query(api, t, {"metrics": ["users"], "date_range": RANGE, "filters": either})
    assert answer["results"][0]["metrics"] == [len({"qu1", "qu2"} | holders & {e.identity for e in events})]
    size = api.get(
        f"/v1/companies/{t.company_id}/segments/{created.json['id']}/size",
        auth=t.read_key,
        params={"date_range": ",".join(RANGE)},
    )
    assert size.status_code == 200 and size.json["people"] == len(swappers)
    assert sum(p["people"] for p in size.json["points"]) >= len(swappers)
    wrong = api.get(f"/v1/companies/{t.company_id}/segments/{created.json['id']}/size?interval=year", auth=t.read_key)
    assert wrong.status_code == 422 and wrong.json["error"]["details"]["part"] == "interval"
    listed = api.get(f"/v1/companies/{t.company_id}/segments", auth=t.read_key).json["items"]
    assert [s["name"] for s in listed] == ["Pro swappers", "Two", "W"]


def test_rule_segments_of_absence_first_sight_and_traits_equal_the_ground_truth(company, api, settings, redis_client):
    t, events = company
    traits = {"qu1": "pro", "qu2": "pro", "qu3": "free", "qnew": "free"}  # qnew: first seen now
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "identify", "message_id": f"trait-{who}", "user_id": who, "traits": {"plan": plan}}
            for who, plan in traits.items()
        ],
    )
    assert answer.status_code == 200, answer.text
    drain(settings, redis_client)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    humans = [e for e in events if not e.bot]
    everyone = {e.identity for e in humans} | set(traits)
    swaps = defaultdict(int)
    for event in humans:
        swaps[event.identity] += event.body.get("name") == "Swap"
    often = sorted(swaps.values())[len(swaps) // 2] + 1
    first = {who: min(e.time for e in humans if e.identity == who) for who in swaps} | {"qnew": today}
    cases = [
        ({"did_not": {"event": "Swap", "min_times": often}}, {w for w in everyone if swaps.get(w, 0) < often}),
        ({"first_seen": {"date_range": "today"}}, {w for w, moment in first.items() if moment >= today}),
        ({"user_property": ["is", "plan", ["pro"]]}, {"qu1", "qu2"}),
        (
            {"all": [{"did": {"event": "Swap", "min_times": often}}, {"user_property": ["is_not", "plan", ["pro"]]}]},
            {w for w in everyone if swaps.get(w, 0) >= often} & {"qu3", "qnew"},  # identified, and not as pro
        ),
    ]
    for rule, people in cases:
        assert people and people != everyone, rule  # each case tells members from others
        created = api.post(
            f"/v1/companies/{t.company_id}/segments", auth=t.owner, json={"name": "r", "kind": "rule", "rule": rule}
        )
        assert created.status_code == 201, created.text
        body = {"metrics": ["users"], "date_range": RANGE, "filters": [["in_segment", created.json["id"]]]}
        assert query(api, t, body)["results"][0]["metrics"] == [len(people)], rule


def test_segment_roles_checks_and_changes(company, api):
    t, _ = company
    viewer = api.user()
    invite = api.post(
        f"/v1/companies/{t.company_id}/invites", auth=t.owner, json={"email": viewer.email, "role": "viewer"}
    )
    assert invite.status_code in (200, 201), invite.text
    base = f"/v1/companies/{t.company_id}/segments"
    assert api.post(base, auth=t.read_key, json={"name": "x", "kind": "static", "user_ids": ["a"]}).status_code in (
        401,
        403,
    )
    for body, part in (
        ({"name": "x", "kind": "rule", "rule": {"did": {"event": 3}}}, "rule.did.event"),
        ({"name": "x", "kind": "rule", "rule": {"sometimes": {}}}, "rule"),
        (
            {"name": "x", "kind": "rule", "rule": {"all": [{"did": {"filters": [["is", "nope", ["1"]]]}}]}},
            "rule.all[0].did.filters[0][1]",
        ),
        ({"name": "x", "kind": "static", "user_ids": []}, "body"),
        ({"name": "x", "kind": "static", "user_ids": ["a"], "wallets": ["0x1"]}, "body"),
    ):
        refused = api.post(base, auth=t.owner, json=body)
        assert refused.status_code == 422 and refused.json["error"]["details"]["part"] == part, (body, refused.text)
    made = api.post(base, auth=t.owner, json={"name": "x", "kind": "static", "user_ids": ["a"]}).json
    item = f"{base}/{made['id']}"
    changed = api.request("PUT", item, auth=t.owner, json={"name": "y", "kind": "static", "wallets": ["0xAB"]})
    assert changed.status_code == 200 and changed.json["wallets"] == ["0xab"] and changed.json["name"] == "y"
    other = tenant(api)
    assert api.get(item.replace(t.company_id, other.company_id), auth=other.read_key).status_code == 404
    assert api.delete(item, auth=t.owner).status_code == 204
    assert api.get(item, auth=t.read_key).status_code == 404
    missing = api.post(
        f"/v1/companies/{t.company_id}/query",
        auth=t.read_key,
        json={"metrics": ["users"], "filters": [["in_segment", made["id"]]]},
    )
    assert missing.status_code == 422 and missing.json["error"]["details"]["part"] == "filters"


def test_small_static_segment_limit(company, with_settings):
    api = with_settings(segment_max_members=2)
    t = tenant(api)
    refused = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "x", "kind": "static", "user_ids": ["a", "b", "c"]},
    )
    assert refused.status_code == 422 and "at most 2" in refused.json["error"]["message"]


@pytest.mark.parametrize(
    ("body", "part"),
    [
        ({"metrics": ["visits"]}, "metrics[0]"),
        ({"metrics": []}, "metrics"),
        ({"metrics": ["events"], "dimensions": ["country", "browser", "os", "device"]}, "dimensions"),
        ({"metrics": ["events"], "dimensions": ["planet"]}, "dimensions[0]"),
        ({"metrics": ["events"], "filters": [["like", "country", ["DE"]]]}, "filters[0][0]"),
        ({"metrics": ["events"], "filters": [["matches", "page_path", ["(unclosed"]]]}, "filters[0][2][0]"),
        ({"metrics": ["events"], "filters": [["matches", "page_path", ["(?=x)"]]]}, "filters[0][2][0]"),
        ({"metrics": ["events"], "filters": [["and", [["is", "time:day", ["x"]]]]]}, "filters[0][1][0][1]"),
        ({"metrics": ["events"], "date_range": "forever"}, "date_range"),
        ({"metrics": ["events"], "date_range": ["2026-02-01", "2025-01-01"]}, "date_range"),
        ({"metrics": ["events"], "timezone": "Mars/Olympus"}, "timezone"),
        ({"metrics": ["events"], "order_by": [["users", "desc"]]}, "order_by[0][0]"),
        ({"metrics": ["events"], "limit": 0}, "limit"),
    ],
)
def test_bad_queries_answer_422_naming_the_part(api, body, part):
    t = tenant(api)
    answer = api.post(f"/v1/companies/{t.company_id}/query", auth=t.read_key, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json["error"]["details"]["part"] == part


def test_query_limits_are_settings(with_settings):
    api = with_settings(query_max_filters=2, query_max_filter_values=1)
    t = tenant(api)
    many = [["is", "country", ["DE"]]] * 3
    answer = api.post(
        f"/v1/companies/{t.company_id}/query", auth=t.read_key, json={"metrics": ["events"], "filters": many}
    )
    assert answer.status_code == 422 and answer.json["error"]["details"]["part"] == "filters[2]"
    values = [["is", "country", ["DE", "FR"]]]
    answer = api.post(
        f"/v1/companies/{t.company_id}/query", auth=t.read_key, json={"metrics": ["events"], "filters": values}
    )
    assert answer.status_code == 422 and answer.json["error"]["details"]["part"] == "filters[0][2]"


def test_csv_answers_the_same_rows(company, api):
    t, events = company
    body = {"metrics": ["events", "users"], "date_range": RANGE, "dimensions": ["browser"]}
    answer = api.post(f"/v1/companies/{t.company_id}/query", auth=t.read_key, json=body, headers={"Accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    lines = answer.text.strip().split("\n")
    expected = truth(events, ["events", "users"], ["browser"], lambda e: True)
    assert lines[0] == "browser,events,users"
    assert {line.split(",")[0]: [int(v) for v in line.split(",")[1:]] for line in lines[1:]} == {
        key[0]: value for key, value in expected.items()
    }
    series = api.get(
        f"/v1/companies/{t.company_id}/analytics/timeseries", auth=t.read_key, headers={"Accept": "text/csv"}
    )
    assert series.status_code == 200 and series.text.split("\n")[0] == "start,end,value"


def test_funnels_and_retention_narrowed_to_a_segment(company, api):
    t, events = company
    signed_up = sorted({e.identity for e in events if not e.bot and e.body.get("name") == "Signup"})
    chosen = signed_up[:3]
    segment = api.post(
        f"/v1/companies/{t.company_id}/segments",
        auth=t.owner,
        json={"name": "Three", "kind": "static", "user_ids": chosen},
    ).json
    span = {"from": FROM.isoformat(), "to": TO.isoformat()}
    everyone = api.get(
        f"/v1/companies/{t.company_id}/drilldowns/funnel", auth=t.read_key, params={**span, "steps": "Signup,Search"}
    ).json
    narrowed = api.get(
        f"/v1/companies/{t.company_id}/drilldowns/funnel",
        auth=t.read_key,
        params={**span, "steps": "Signup,Search", "segment": segment["id"]},
    ).json
    assert everyone["steps"][0]["people"] == len(signed_up) > 3
    assert narrowed["steps"][0]["people"] == 3
    cohorts = api.get(
        f"/v1/companies/{t.company_id}/drilldowns/retention", auth=t.read_key, params={**span, "segment": segment["id"]}
    ).json["cohorts"]
    assert sum(cohort["people"] for cohort in cohorts) == 3


def test_a_stale_answer_is_recomputed_by_one_request_while_the_others_get_it_stale(
    with_settings, settings, redis_client
):
    from models import redis_keys

    api = with_settings(query_live_cache_seconds=0)  # every answer about today is stale at once
    t = tenant(api)
    body = {"metrics": ["events"], "date_range": [NOW.date().isoformat()] * 2}
    sent = generate(random.Random(9), "s", 30)
    for event in sent:
        event.body["timestamp"] = NOW.isoformat() + "Z"
    send(api, t.write_key, sent[:10])
    drain(settings, redis_client)
    first = query(api, t, body)["results"][0]["metrics"][0]
    assert first == sum(not e.bot for e in sent[:10])
    send(api, t.write_key, sent[10:])
    drain(settings, redis_client)
    # Another request is recomputing it: this one gets the stale answer rather than asking ClickHouse too.
    for key in redis_client.scan_iter(redis_keys.query_answer(t.company_id, "*")):
        redis_client.set(key.replace(b":qa:", b":qr:"), b"1", ex=30)
    assert query(api, t, body)["results"][0]["metrics"][0] == first
    for key in redis_client.scan_iter(redis_keys.query_refresh(t.company_id, "*")):
        redis_client.delete(key)
    assert query(api, t, body)["results"][0]["metrics"][0] == sum(not e.bot for e in sent)


def test_a_first_answer_is_computed_once_while_the_others_wait_for_it(settings, redis_client):
    from concurrent.futures import ThreadPoolExecutor

    from queries.cache import AnswerCache

    cache = AnswerCache(settings, redis_client)
    computed = []

    def slow() -> tuple[bytes, bool]:
        computed.append(1)
        time.sleep(0.3)
        return b"answer", False

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: cache.answer("c", "first", slow), range(4)))
    assert answers == [b"answer"] * 4 and len(computed) == 1

    def failing() -> tuple[bytes, bool]:
        raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError):
        cache.answer("c", "second", failing)
    assert cache.answer("c", "second", lambda: (b"later", False)) == b"later"  # no lock left behind
