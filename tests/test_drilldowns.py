"""Drill-downs against ClickHouse: funnels in order within a window, weekly retention cohorts, a
wallet's and a contract's activity, a user's timeline; the tenant filter and the limits."""

from __future__ import annotations

import datetime as dt

from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
WEEK = dt.timedelta(days=7)


def event(who: str, message_id: str, when: dt.datetime, **fields) -> dict:
    return {
        "type": "track",
        "user_id": who,
        "message_id": message_id,
        "timestamp": when.isoformat(),
        "context": {"userAgent": CHROME},
        **fields,
    }


def ask(api, t, path: str, **params):
    answer = api.get(f"/v1/companies/{t.company_id}/drilldowns/{path}", auth=t.read_key, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json


def test_funnel_counts_people_who_did_the_steps_in_order_within_the_window(api, settings, redis_client):
    t = tenant(api)
    start = NOW - dt.timedelta(hours=5)
    events = []
    for who, steps in {
        "a": ["Signup", "page", "Buy"],
        "b": ["Signup", "page"],
        "c": ["page", "Signup"],
        "d": ["Signup", "page", "Buy"],
    }.items():
        for i, step in enumerate(steps):
            gap = dt.timedelta(hours=3 * i) if who == "d" else dt.timedelta(minutes=i)
            extra = (
                {"type": "page", "context": {"page": {"path": "/pricing"}, "userAgent": CHROME}}
                if step == "page"
                else {"name": step}
            )
            events.append(event(who, f"{who}{i}", start + gap, **extra))
    api.post("/v1/events", auth=t.write_key, json=events)
    other = tenant(api)
    api.post("/v1/events", auth=other.write_key, json=[event("z", "z0", start, name="Signup")])
    drain(settings, redis_client)
    funnel = ask(api, t, "funnel", steps="Signup,page:/pricing,Buy", window=3600)
    # c did the steps out of order; d took three hours between steps, longer than the window.
    assert [(s["step"], s["people"]) for s in funnel["steps"]] == [("Signup", 4), ("page:/pricing", 2), ("Buy", 1)]
    assert funnel["steps"][2]["conversion_from_previous"] == 0.5
    wide = ask(api, t, "funnel", steps="Signup,page:/pricing,Buy", window=86400)
    assert [s["people"] for s in wide["steps"]] == [4, 3, 2]
    for bad in ({"steps": "Signup"}, {"steps": ",".join(["x"] * 11)}, {"steps": "a,b", "window": 0}):
        assert (
            api.get(f"/v1/companies/{t.company_id}/drilldowns/funnel", auth=t.read_key, params=bad).status_code == 400
        )


def test_weekly_retention_cohorts(api, settings, redis_client):
    t = tenant(api)
    three_weeks_ago = NOW - 3 * WEEK
    events = [event(who, f"{who}-first", three_weeks_ago, name="Hi") for who in ("p", "q", "r")]
    events += [
        event("p", "p-back1", three_weeks_ago + WEEK, name="Hi"),
        event("q", "q-back1", three_weeks_ago + WEEK, name="Hi"),
        event("p", "p-back2", three_weeks_ago + 2 * WEEK, name="Hi"),
    ]
    api.post("/v1/events", auth=t.write_key, json=events)
    drain(settings, redis_client)
    retention = ask(api, t, "retention", **{"from": (NOW - 5 * WEEK).date().isoformat()})
    cohort = next(c for c in retention["cohorts"] if c["people"] == 3)
    assert [(r["week"], r["people"]) for r in cohort["returning"]][:2] == [(1, 2), (2, 1)]


def test_wallet_and_contract_activity_and_a_users_timeline(api, settings, redis_client):
    t = tenant(api)
    wallet, contract = "0x" + "ab" * 20, "0x" + "cd" * 20
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            event(
                "w",
                "w1",
                NOW - dt.timedelta(hours=2),
                type="wallet_connect",
                wallet_address=wallet.upper().replace("X", "x"),
                chain_id="1",
            ),
            event(
                "w",
                "w2",
                NOW - dt.timedelta(hours=1),
                type="transaction",
                wallet_address=wallet,
                chain_id="1",
                status="confirmed",
                tx_hash="0x" + "1" * 64,
                contract_address=contract,
                value="5",
                token="ETH",
            ),
            event(
                "v",
                "v1",
                NOW - dt.timedelta(hours=1),
                type="transaction",
                wallet_address="0x" + "ef" * 20,
                chain_id="1",
                status="failed",
                tx_hash="0x" + "2" * 64,
                contract_address=contract,
                value="7",
                token="ETH",
            ),
        ],
    )
    drain(settings, redis_client)
    mine = ask(api, t, f"wallets/{wallet}")
    assert mine["events"] == 2 and mine["people"] == 1 and mine["recent"][0]["type"] == "transaction"
    used = ask(api, t, f"contracts/{contract}")
    assert used["events"] == 2 and used["wallets"] == 2 and used["volume"] == 12
    assert {(k["status"], k["count"]) for k in used["by_kind"]} == {("confirmed", 1), ("failed", 1)}
    timeline = ask(api, t, "users/w/timeline")
    assert [e["message_id"] for e in timeline["items"]] == ["w2", "w1"]
    other = tenant(api)
    assert api.get(f"/v1/companies/{t.company_id}/drilldowns/wallets/{wallet}", auth=other.read_key).status_code == 404
