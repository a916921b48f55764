"""The same system as a cluster (bin/cluster up): a Redis Cluster of 3 masters and 3 replicas,
ClickHouse as 2 shards x 2 replicas, 4 stream shards and broker partitions, two of each process.
Events sent through either web process, in every wire format and by the real SDKs, are stored once;
each shard's replicas hold the same rows and one person's events sit on one shard; real-time equals
ClickHouse; the analytics and drill-down answers equal those of one node for the same events; a key
revoked through one web process is refused by the other; one scheduler leads; transactions are
verified on a local chain and counted as the chain says."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest
import requests
from playhouse.db_url import connect

from models import redis_keys
from models.clickhouse import clickhouse_client
from models.redis_client import redis_client
from rollups.compute import rollup_company_now
from tests.chain_helpers import ChainClient
from tests.cluster.conftest import WEB
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain, setup_company, stored, week_of_events
from tests.processes import ROOT, wait_for
from tests.test_pipeline_e2e import native_batch
from tests.test_realtime_e2e import humans, matches_clickhouse, mixed_events

pytestmark = pytest.mark.cluster
TODAY = dt.datetime.now(dt.UTC).date()
SPAN = {"from": (TODAY - dt.timedelta(days=7)).isoformat(), "to": (TODAY + dt.timedelta(days=1)).isoformat()}
VOLATILE = {"as_of", "complete_until", "company_id"}  # the two companies differ in these alone


def post(base: str, key: str, events: list[dict]) -> None:
    """Sends the events as a browser would (a script's user agent marks them as a bot's), in requests
    of 200 as tests.pipeline_helpers.send does (sessions are derived in each request's time order)."""
    headers = {"Authorization": f"Bearer {key}", "User-Agent": CHROME}
    for start in range(0, len(events), 200):
        answer = requests.post(f"{base}/v1/events", json=events[start : start + 200], headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json()["accepted"] == len(events[start : start + 200]), answer.text


def node_counts(company: str) -> dict[str, int]:
    """Rows of the company in each node's local events table (n1, n2: shard 1; n3, n4: shard 2)."""
    counts = {}
    for node, port in (("n1", 8201), ("n2", 8202), ("n3", 8203), ("n4", 8204)):
        client = clickhouse_client(f"http://default:@127.0.0.1:{port}/adtivity")
        counts[node] = client.query(
            "SELECT count() FROM events_local WHERE company_id = toUUID(%(c)s)", parameters={"c": company}
        ).result_rows[0][0]
    return counts


def end_users(cluster, company: str) -> int:
    database = connect(cluster.database_url)
    try:
        return database.execute_sql("SELECT count(*) FROM end_users WHERE company_id = %s", (company,)).fetchone()[0]
    finally:
        database.close()


def test_every_format_and_sdk_through_either_web_process_is_stored_once(cluster):
    from rudderstack.analytics.client import Client as RudderClient
    from segment.analytics.client import Client as SegmentClient

    company, key, auth = setup_company(WEB[0])
    headers = {"Authorization": f"Bearer {key}"}
    for base, half in zip(WEB, (native_batch("n", 120)[:60], native_batch("n", 120)[60:]), strict=True):
        assert (
            requests.post(f"{base}/v1/events", json={"batch": half}, headers=headers, timeout=10).json()["accepted"]
            == 60
        )
    legacy = [{"type": "track", "eventName": "Legacy", "user_id": f"l{i}", "chain_id": 1} for i in range(30)]
    answer = requests.post(f"{WEB[1]}/sdk/event", json=legacy, headers={"X-API-Key": key}, timeout=10)
    assert answer.json()["accepted"] == 30
    errors = []
    segment = SegmentClient(key, host=WEB[0], sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    for i in range(20):
        segment.track(f"seg-user{i}", "Order Completed", {"revenue": i}, message_id=f"seg-{i}")
    rudder = RudderClient(key, host=WEB[1], sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    for i in range(10):
        rudder.track(f"rs-user{i}", "Signed Up", {"i": i}, message_id=f"rs-{i}")
    assert errors == []
    total = 120 + 30 + 20 + 10
    wait_for(lambda: stored(cluster, company) == total, 60, f"{total} events in ClickHouse")
    wait_for(lambda: end_users(cluster, company) == 9 + 30 + 20 + 10, 60, "every end user in Postgres")

    # Everything again, through the other web process each time: nothing more is stored.
    for base, half in zip(WEB[::-1], (native_batch("n", 120)[:60], native_batch("n", 120)[60:]), strict=True):
        requests.post(f"{base}/v1/events", json={"batch": half}, headers=headers, timeout=10)
    for i in range(20):
        segment.track(f"seg-user{i}", "Order Completed", {"revenue": i}, message_id=f"seg-{i}")
    marker = [{"type": "track", "name": "Marker", "user_id": "m", "message_id": "marker"}]
    post(WEB[0], key, marker)
    wait_for(lambda: stored(cluster, company, "name = 'Marker'") == 1, 60, "the events sent after the resends")
    wait_for(lambda: stored(cluster, company) == total + 1, 30, "every stream shard to catch up")
    client = clickhouse_client(cluster.clickhouse_url)
    distinct = client.query(
        "SELECT uniqExact(message_id) FROM events WHERE company_id = toUUID(%(c)s)", parameters={"c": company}
    ).result_rows[0][0]
    assert distinct == total + 1
    identify = requests.get(
        f"{WEB[1]}/v1/companies/{company}/events", params={"type": "track"}, headers=auth, timeout=10
    )
    assert identify.status_code == 200 and identify.json()["items"]


def test_rows_are_sharded_by_person_and_each_shards_replicas_agree(cluster):
    company, key, _ = setup_company(WEB[1])
    events = [
        {"type": "track", "name": "Step", "user_id": f"p{i % 40}", "message_id": f"r-{i}", "properties": {"i": i}}
        for i in range(800)
    ]
    post(WEB[1], key, events)
    wait_for(lambda: stored(cluster, company) == 800, 60, "800 events in ClickHouse")
    wait_for(lambda: (lambda c: c["n1"] == c["n2"] and c["n3"] == c["n4"])(node_counts(company)), 30, "replication")
    counts = node_counts(company)
    assert counts["n1"] + counts["n3"] == 800
    assert counts["n1"] > 0 and counts["n3"] > 0  # 40 people spread over both shards
    for port in (8201, 8203):
        client = clickhouse_client(f"http://default:@127.0.0.1:{port}/adtivity")
        people = client.query(
            "SELECT user_id, count() FROM events_local WHERE company_id = toUUID(%(c)s) GROUP BY user_id",
            parameters={"c": company},
        ).result_rows
        assert all(count == 20 for _, count in people)  # every event of a person on the shard that has any


def test_realtime_equals_clickhouse_with_two_streams_processes(cluster):
    company, key, auth = setup_company(WEB[0])
    events = mixed_events("rt", 400, dt.datetime.now(dt.UTC))
    post(WEB[0], key, events[:200])
    post(WEB[1], key, events[200:])
    post(WEB[1], key, events[:100])  # resent: counted once
    wait_for(lambda: stored(cluster, company) == 400, 60, "400 events in ClickHouse")
    wait_for(lambda: matches_clickhouse(cluster, WEB[1], company, auth, humans(events)), 60, "real-time to match")


def without(answer, keys: set[str]):
    """The answer with the named keys left out, at any depth."""
    if isinstance(answer, dict):
        return {k: without(v, keys) for k, v in answer.items() if k not in keys}
    if isinstance(answer, list):
        return [without(item, keys) for item in answer]
    return answer


ANALYTICS = [
    ("analytics/overview", {}),
    ("analytics/timeseries", {"metric": "events", "interval": "day"}),
    ("analytics/timeseries", {"metric": "users", "interval": "day", "tz": "America/New_York"}),
    ("analytics/breakdown", {"dimension": "page_path"}),
    ("analytics/active-users", {}),
    ("analytics/sessions", {}),
    ("analytics/web3", {}),
    ("analytics/payments", {}),
    ("drilldowns/funnel", {"steps": "page:/pricing,Signup", "window": 7 * 86400}),
    ("drilldowns/funnel", {"steps": "page:/pricing,transaction:confirmed", "window": 7 * 86400}),
    ("drilldowns/retention", {}),
]


def test_analytics_and_drilldowns_equal_one_nodes_answers_for_the_same_events(cluster, api, settings, redis_client):
    events = week_of_events(random.Random(11), "w", 1200)
    single = tenant(api)
    for start in range(0, len(events), 200):
        assert api.post("/v1/events", auth=single.write_key, json=events[start : start + 200]).status_code == 200
    drain(settings, redis_client)
    week = dataclasses.replace(settings, rollup_window_hours=9 * 24)
    rollup_company_now(week, redis_client, clickhouse_client(settings.clickhouse_url), single.company_id)

    company, key, auth = setup_company(WEB[0])
    post(WEB[0], key, events)
    wait_for(lambda: stored(cluster, company) == len(events), 60, "every event in the cluster's ClickHouse")

    def one_node(path: str, params: dict) -> dict:
        answer = api.get(f"/v1/companies/{single.company_id}/{path}", auth=single.read_key, params={**SPAN, **params})
        assert answer.status_code == 200, answer.text
        return without(answer.json, VOLATILE)

    def on_cluster(path: str, params: dict, base: str) -> dict:
        answer = requests.get(
            f"{base}/v1/companies/{company}/{path}", params={**SPAN, **params}, headers=auth, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return without(answer.json(), VOLATILE)

    expected = {(path, str(params)): one_node(path, params) for path, params in ANALYTICS}
    counted = expected["analytics/overview", "{}"]["metrics"]["events"]["value"]
    assert counted > 1000  # the week's events less the bots'
    # The cluster's scheduler rolls the company up on its own (ROLLUP_EVERY_SECONDS); wait for it (the
    # bots left out are counted by the rollups alone).
    wait_for(
        lambda: on_cluster("analytics/overview", {}, WEB[0]) == expected["analytics/overview", "{}"],
        120,
        "the cluster's rollups",
    )
    for index, (path, params) in enumerate(ANALYTICS):
        assert on_cluster(path, params, WEB[index % 2]) == expected[path, str(params)], (path, params)


QUERIES = [
    {
        "metrics": ["events", "users", "sessions", "bounce_rate", "avg_session_seconds", "conversion_rate"],
        "dimensions": ["time:day", "event:type"],
        "filters": [["is_not", "event:type", ["payment"]]],
        "timezone": "Europe/Berlin",
        "limit": 1000,
    },
    {
        "metrics": ["wallets", "transactions", "volume"],
        "dimensions": ["chain"],
        "filters": [["matches", "wallet", ["^0x0"]]],
    },
    {"metrics": ["revenue", "users"], "dimensions": ["currency"], "filters": [["is", "event:type", ["payment"]]]},
    {"metrics": ["transactions", "users"], "dimensions": ["verification"]},
    {
        "metrics": ["page_views", "users"],
        "dimensions": ["page_path"],
        "filters": [["contains", "referrer_domain", ["news"]]],
    },
]
SEGMENTS = [
    {"name": "Searched twice", "kind": "rule", "rule": {"did": {"event": "Search", "min_times": 2}}},
    {"name": "Wallets", "kind": "static", "wallets": [f"0x{n:040x}" for n in range(3)]},
    {"name": "Users", "kind": "static", "user_ids": [f"u{n}" for n in range(10)]},
]


def test_queries_and_segments_equal_one_nodes_answers_for_the_same_events(cluster, api, settings, redis_client):
    """The query API's SQL (joins of subqueries, a segment's IN subquery) on the Distributed tables:
    each shard tests its own people, which is exact as a person's events share a shard."""
    events = week_of_events(random.Random(17), "c", 900)
    single = tenant(api)
    for start in range(0, len(events), 200):
        assert api.post("/v1/events", auth=single.write_key, json=events[start : start + 200]).status_code == 200
    drain(settings, redis_client)
    company, key, auth = setup_company(WEB[0])
    post(WEB[0], key, events)
    wait_for(lambda: stored(cluster, company) == len(events), 60, "every event in the cluster's ClickHouse")
    span = [(TODAY - dt.timedelta(days=7)).isoformat(), TODAY.isoformat()]

    def one_node(body: dict) -> dict:
        answer = api.post(
            f"/v1/companies/{single.company_id}/query", auth=single.read_key, json={**body, "date_range": span}
        )
        assert answer.status_code == 200, answer.text
        return {"results": answer.json["results"], "total_rows": answer.json["meta"]["total_rows"]}

    def on_cluster(body: dict, base: str) -> dict:
        answer = requests.post(
            f"{base}/v1/companies/{company}/query", json={**body, "date_range": span}, headers=auth, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return {"results": answer.json()["results"], "total_rows": answer.json()["meta"]["total_rows"]}

    # Without filters, the cluster's own rollups answer once its scheduler has rolled the company up.
    unfiltered = {"metrics": ["events"], "dimensions": ["event:type"]}

    def from_rollups() -> bool:
        answer = requests.post(
            f"{WEB[1]}/v1/companies/{company}/query", json={**unfiltered, "date_range": span}, headers=auth, timeout=30
        )
        return answer.json()["meta"]["source"] == "rollups"

    wait_for(from_rollups, 120, "the cluster's rollups to answer")
    bodies = [unfiltered, *QUERIES]
    for segment in SEGMENTS:
        mine = api.post(f"/v1/companies/{single.company_id}/segments", auth=single.owner, json=segment).json["id"]
        theirs = requests.post(f"{WEB[1]}/v1/companies/{company}/segments", json=segment, headers=auth, timeout=10)
        assert theirs.status_code == 201, theirs.text
        bodies.append(({"metrics": ["users", "events"], "dimensions": ["event:type"]}, mine, theirs.json()["id"]))
    for index, body in enumerate(bodies):
        if isinstance(body, tuple):
            asked, mine, theirs = body
            expected = one_node({**asked, "filters": [["in_segment", mine]]})
            found = on_cluster({**asked, "filters": [["in_segment", theirs]]}, WEB[index % 2])
        else:
            expected, found = one_node(body), on_cluster(body, WEB[index % 2])
        assert expected["results"], body
        assert found == expected, body


def test_the_cluster_verifies_transactions_on_the_chain_and_counts_what_it_says(cluster):
    """The scheduler and workers of the cluster verify against the development chain (anvil, which
    `bin/services up` starts): the answers go through Postgres to the Distributed tx_verifications,
    and from there to the rollups, the query API and the funnels."""
    chain = ChainClient(cluster.chain_rpc["31337"][0])
    sender, recipient = chain.accounts[0], chain.accounts[1]
    paid = chain.send(sender, recipient, 10**18)
    lied = chain.send(sender, recipient, 10**17)
    chain.mine(2)  # both have their 2 confirmations
    company, key, auth = setup_company(WEB[0])
    made_up = "0x" + "9" * 64
    reports = {paid: {"value": "1"}, lied: {"value": "5"}, made_up: {}}
    post(
        WEB[1],
        key,
        [
            {
                "type": "transaction",
                "user_id": f"u{i}",
                "chain_id": "31337",
                "tx_hash": tx_hash,
                "status": "confirmed",
                **fields,
            }
            for i, (tx_hash, fields) in enumerate(reports.items())
        ],
    )

    def verified() -> dict:
        answer = requests.get(f"{WEB[0]}/v1/companies/{company}/analytics/web3", params=SPAN, headers=auth, timeout=30)
        return answer.json()["verified"]

    expected = {("31337", "confirmed", 1), ("31337", "mismatch", 1), ("31337", "pending", 1)}
    wait_for(
        lambda: {(r["chain_id"], r["state"], r["count"]) for r in verified()["by_state"]} == expected,
        120,
        "the cluster's verified rollups",
    )
    assert verified()["disagreements"] == 1
    answer = requests.post(
        f"{WEB[1]}/v1/companies/{company}/query",
        json={"metrics": ["users"], "dimensions": ["verification"], "date_range": [SPAN["from"], SPAN["to"]]},
        headers=auth,
        timeout=30,
    )
    assert {tuple(row["dimensions"]): row["metrics"][0] for row in answer.json()["results"]} == {
        ("confirmed",): 1,
        ("mismatch",): 1,
        ("pending",): 1,
    }


def test_a_key_revoked_through_one_web_process_is_refused_by_the_other_within_seconds(cluster):
    company, _, auth = setup_company(WEB[0])
    created = requests.post(f"{WEB[0]}/v1/companies/{company}/keys", json={"kind": "write"}, headers=auth, timeout=10)
    key, key_id = created.json()["key"], created.json()["details"]["id"]
    post(WEB[1], key, [{"type": "track", "name": "Cached", "user_id": "k"}])  # web 2 now holds the key in its cache
    assert (
        requests.delete(f"{WEB[0]}/v1/companies/{company}/keys/{key_id}", headers=auth, timeout=10).status_code == 204
    )

    def refused() -> bool:
        answer = requests.post(
            f"{WEB[1]}/v1/events",
            json=[{"type": "track", "name": "After", "user_id": "k"}],
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        return answer.status_code == 401

    wait_for(refused, 5, "web 2 to refuse the revoked key")


def test_one_scheduler_leads_and_the_other_stands_by(cluster):
    client = redis_client(cluster, timeout=5)
    leader = client.get(redis_keys.SCHEDULER_LEADER)
    assert leader is not None
    holders = set()
    for name in ("scheduler-1", "scheduler-2"):
        pid = (ROOT / ".data" / "cluster" / "run" / f"{name}.pid").read_text().strip()
        holders.add(f":{pid}:" in leader.decode())
    assert holders == {True, False}
