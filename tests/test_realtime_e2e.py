"""Real-time metrics end to end, through the real processes (web, worker, scheduler, streams) on the
real stores and the real broker: the snapshot equals ClickHouse's counts for the windows it covers,
after a graceful restart and after SIGKILL of the streams process; late events and bots stay out of
the windows; with the streams process down the API says the snapshot is stale while ingest and
persistence carry on; with persistence stalled the snapshot says it is stale too."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import requests

from models.clickhouse import clickhouse_client
from tests.ingest_helpers import CHROME, GOOGLEBOT
from tests.pipeline_helpers import setup_company, stored
from tests.processes import running_system, wait_for

pytestmark = pytest.mark.processes
STALE_SECONDS = 4


@pytest.fixture
def system(settings):
    with running_system(
        ("web", "worker", "scheduler", "streams"),
        REALTIME_STALE_SECONDS=str(STALE_SECONDS),
        STREAMS_APP_ID=f"adtivity-test-{uuid.uuid4().hex[:12]}",
    ) as system:
        yield system


def mixed_events(prefix: str, n: int, now: dt.datetime) -> list[dict]:
    """Pages, named tracks, wallet connects, transactions and payments from a few users; a bot's page
    views; all within the last few minutes."""
    events = []
    for i in range(n):
        moment = (now - dt.timedelta(seconds=i % 240)).isoformat()
        base = {"message_id": f"{prefix}-{i}", "timestamp": moment, "anonymous_id": f"anon{i % 13}"}
        if i % 5 == 1:
            base["user_id"] = f"user{i % 7}"
        kind = i % 6
        if kind == 0:
            events.append(
                {**base, "type": "page", "context": {"page": {"path": f"/p{i % 4}", "url": f"https://ex.com/p{i % 4}"}}}
            )
        elif kind == 1:
            events.append({**base, "type": "track", "name": f"Clicked {i % 3}"})
        elif kind == 2:
            events.append({**base, "type": "wallet_connect", "wallet_address": f"0x{i % 9:040x}", "chain_id": "1"})
        elif kind == 3:
            events.append(
                {
                    **base,
                    "type": "transaction",
                    "wallet_address": f"0x{i % 9:040x}",
                    "chain_id": str(1 + i % 2),
                    "tx_hash": f"0x{i:064x}",
                    "status": ("submitted", "confirmed")[i % 2],
                    "value": "1000000000000000000",
                    "token": "ETH",
                }
            )
        elif kind == 4:
            events.append(
                {
                    **base,
                    "type": "payment",
                    "payment_id": f"pay{i}",
                    "status": "completed",
                    "amount": "9.99",
                    "currency": ("USD", "EUR")[i % 2],
                }
            )
        else:
            events.append({**base, "type": "page", "context": {"page": {"path": "/bot"}, "userAgent": GOOGLEBOT}})
    return events


def realtime(base: str, company: str, auth: dict) -> dict:
    response = requests.get(f"{base}/v1/companies/{company}/realtime", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def ground_truth(settings, company: str, first_minute: str) -> dict:
    """What ClickHouse says for the snapshot's windows (humans only)."""
    client = clickhouse_client(settings.clickhouse_url)
    start = int(dt.datetime.fromisoformat(first_minute.replace("Z", "+00:00")).timestamp())
    today = int(time.time()) // 86400 * 86400
    scope = "company_id = toUUID(%(c)s) AND is_bot = 0"
    params = {"c": company, "start": start, "today": today}

    def rows(query: str) -> list:
        return client.query(query.replace("{scope}", scope), parameters=params).result_rows

    hour = "{scope} AND event_time >= toDateTime(%(start)s)"
    return {
        "events": rows(f"SELECT count() FROM events WHERE {hour}")[0][0],
        "by_type": dict(rows(f"SELECT type, count() FROM events WHERE {hour} GROUP BY type")),
        "names": dict(
            rows(f"SELECT name, count() FROM events WHERE {hour} AND type != 'page' AND name != '' GROUP BY name")
        ),
        "pages": dict(rows(f"SELECT page_path, count() FROM events WHERE {hour} AND type = 'page' GROUP BY page_path")),
        "users_hour": rows(f"SELECT uniqExact(if(user_id != '', user_id, anonymous_id)) FROM events WHERE {hour}")[0][
            0
        ],
        "today": rows("SELECT count() FROM events WHERE {scope} AND event_time >= toDateTime(%(today)s)")[0][0],
        "users_today": rows(
            "SELECT uniqExact(if(user_id != '', user_id, anonymous_id)) FROM events "
            "WHERE {scope} AND event_time >= toDateTime(%(today)s)"
        )[0][0],
        "wallets": rows(f"SELECT uniqExact(wallet_address) FROM events WHERE {hour} AND wallet_address != ''")[0][0],
        "transactions": sorted(
            rows(
                f"SELECT chain_id, status, count() FROM events WHERE {hour} AND type = 'transaction' "
                "GROUP BY chain_id, status"
            )
        ),
        "revenue": sorted(
            (c, str(a.normalize()))
            for c, a in rows(
                f"SELECT currency, sum(amount) FROM events WHERE {hour} AND type = 'payment' AND status = 'completed' "
                "GROUP BY currency"
            )
        ),
    }


def seen(snapshot: dict) -> dict:
    hour = snapshot["last_hour"]
    return {
        "events": hour["events"],
        "by_type": hour["by_type"],
        "names": {row["name"]: row["count"] for row in hour["top_events"]},
        "pages": {row["name"]: row["count"] for row in hour["top_pages"]},
        "users_hour": snapshot["active_users"]["last_60_minutes"],
        "today": snapshot["today"]["events"],
        "users_today": snapshot["active_users"]["today"],
        "wallets": snapshot["web3"]["distinct_wallets"],
        "transactions": sorted(
            (row["chain_id"], row["status"], row["count"]) for row in snapshot["web3"]["transactions"]
        ),
        "revenue": sorted((row["currency"], str(float(row["amount"]))) for row in snapshot["payments"]["revenue"]),
    }


def matches_clickhouse(settings, base: str, company: str, auth: dict, expected_events: int) -> bool:
    """Every figure of a fresh snapshot equals ClickHouse's. Waited for, not asserted at once: an
    event outside the last hour (a late one) may reach "today" in a later message than the rest."""
    snapshot = realtime(base, company, auth)
    if snapshot["stale"] or snapshot["last_hour"]["events"] != expected_events:
        return False
    truth = ground_truth(settings, company, snapshot["per_minute"][0]["minute"])
    truth["revenue"] = [(currency, str(float(amount))) for currency, amount in truth["revenue"]]
    return seen(snapshot) == truth


def send(base: str, key: str, events: list[dict]) -> None:
    for start in range(0, len(events), 100):
        answer = requests.post(
            f"{base}/v1/events",
            json=events[start : start + 100],
            headers={"Authorization": f"Bearer {key}", "User-Agent": CHROME},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["accepted"] == len(events[start : start + 100]), answer.text


def humans(events: list[dict]) -> int:
    return sum(1 for event in events if event.get("context", {}).get("userAgent") != GOOGLEBOT)


def test_counts_equal_clickhouse_across_resends_late_events_and_a_graceful_restart(system, settings):
    base, processes = system
    company, key, auth = setup_company(base)
    now = dt.datetime.now(dt.UTC)
    first = mixed_events("a", 300, now)
    send(base, key, first)
    send(base, key, first[:120])  # resends: stored once, counted once
    late = [
        {
            "type": "track",
            "name": "Late",
            "message_id": "late-1",
            "anonymous_id": "late-user",
            "timestamp": (now - dt.timedelta(hours=2)).isoformat(),
        }
    ]
    send(base, key, late)
    wait_for(lambda: stored(settings, company) == 301, 30, "every event in ClickHouse")
    wait_for(lambda: matches_clickhouse(settings, base, company, auth, humans(first)), 30, "the snapshot to catch up")
    snapshot = realtime(base, company, auth)
    assert "Late" not in {row["name"] for row in snapshot["last_hour"]["top_events"]}
    assert snapshot["web3"]["wallet_connects"] == sum(1 for e in first if e["type"] == "wallet_connect")
    assert snapshot["payments"]["completed"] == sum(1 for e in first if e["type"] == "payment")
    assert sum(minute["events"] for minute in snapshot["per_minute"]) == humans(first)

    processes["streams"].stop()
    processes["streams"].start()
    processes["streams"].wait_ready()
    restarted = time.time()
    wait_for(
        lambda: realtime(base, company, auth)["as_of"] > dt.datetime.fromtimestamp(restarted, dt.UTC).isoformat(),
        60,
        "snapshots from the restarted process",
    )
    assert matches_clickhouse(settings, base, company, auth, humans(first))

    second = mixed_events("b", 120, dt.datetime.now(dt.UTC))
    send(base, key, second)
    wait_for(
        lambda: matches_clickhouse(settings, base, company, auth, humans(first) + humans(second)),
        30,
        "the snapshot after the restart to count new events",
    )


def test_sigkill_of_the_streams_process_neither_loses_nor_double_counts(system, settings):
    base, processes = system
    company, key, auth = setup_company(base)
    events = mixed_events("k", 3000, dt.datetime.now(dt.UTC))
    send(base, key, events[:1500])
    wait_for(lambda: realtime(base, company, auth)["last_hour"]["events"] > 0, 30, "counting to begin")
    processes["streams"].kill()
    send(base, key, events[1500:])
    processes["streams"].start()
    processes["streams"].wait_ready()
    wait_for(lambda: stored(settings, company) == len(events), 30, "every event in ClickHouse")
    wait_for(
        lambda: matches_clickhouse(settings, base, company, auth, humans(events)),
        60,
        "the snapshot to equal ClickHouse after the kill",
    )


def test_streams_down_means_stale_while_ingest_and_persistence_carry_on(system, settings):
    base, processes = system
    company, key, auth = setup_company(base)
    send(base, key, mixed_events("s", 60, dt.datetime.now(dt.UTC)))
    wait_for(
        lambda: matches_clickhouse(settings, base, company, auth, humans(mixed_events("s", 60, dt.datetime.now()))),
        30,
        "the first snapshot",
    )
    processes["streams"].stop()
    wait_for(lambda: realtime(base, company, auth)["stale"], STALE_SECONDS + 5, "the snapshot to be reported stale")
    later = mixed_events("t", 60, dt.datetime.now(dt.UTC))
    send(base, key, later)
    wait_for(lambda: stored(settings, company) == 120, 30, "ingest and persistence to carry on")
    processes["streams"].start()
    processes["streams"].wait_ready()
    wait_for(
        lambda: matches_clickhouse(settings, base, company, auth, 2 * humans(later)),
        60,
        "the snapshot to be fresh and caught up",
    )


def test_a_stalled_persistence_makes_the_snapshot_stale_until_it_catches_up(system, settings):
    base, processes = system
    company, key, auth = setup_company(base)
    processes["worker"].stop()
    events = mixed_events("w", 30, dt.datetime.now(dt.UTC))
    send(base, key, events)
    wait_for(lambda: realtime(base, company, auth)["stale"], STALE_SECONDS + 5, "the snapshot to be reported stale")
    processes["worker"].start()
    processes["worker"].wait_ready()
    wait_for(
        lambda: matches_clickhouse(settings, base, company, auth, humans(events)),
        60,
        "the snapshot to be fresh and caught up",
    )
