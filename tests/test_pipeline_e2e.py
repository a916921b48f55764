"""End to end through the real processes: web (gunicorn), worker (dramatiq), scheduler, on the real
stores. Events in all three formats, sent by our own requests and by the Segment and RudderStack
SDKs from PyPI, land exactly once; resends change nothing; a worker killed with SIGKILL mid-stream
loses nothing and stores nothing twice; nor does losing the de-duplication filter while it runs."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import requests

from adtivity.cli import rebuild_dedup
from models import redis_keys
from models.db import database
from models.redis_streams import PERSIST_GROUP, stream_key
from models.tracking import EndUser
from tests.pipeline_helpers import setup_company, stored
from tests.processes import running_system, wait_for

pytestmark = pytest.mark.processes


def end_users(company_id: str) -> int:
    with database.connection_context():
        return EndUser.select().where(EndUser.company_id == company_id).count()


def caught_up(redis_client, settings) -> bool:
    """Every entry of every stream delivered to the persist group and acknowledged."""
    for shard in range(settings.stream_shards):
        stream = stream_key(shard)
        if not redis_client.exists(stream):
            continue
        last = redis_client.xinfo_stream(stream)["last-generated-id"]
        groups = {g["name"]: g for g in redis_client.xinfo_groups(stream)}
        group = groups.get(PERSIST_GROUP.encode())
        if group is None or group["last-delivered-id"] != last or group["pending"]:
            return False
    return True


def native_batch(prefix: str, n: int) -> list[dict]:
    return [
        {
            "type": "track",
            "name": "Clicked",
            "user_id": f"{prefix}-user{i % 9}",
            "message_id": f"{prefix}-{i}",
            "properties": {"i": i},
        }
        for i in range(n)
    ]


def test_three_formats_and_real_sdks_land_exactly_once(system, settings, redis_client):
    from rudderstack.analytics.client import Client as RudderClient
    from segment.analytics.client import Client as SegmentClient

    base, _ = system
    company, key, auth = setup_company(base)
    headers = {"Authorization": f"Bearer {key}"}
    assert (
        requests.post(f"{base}/v1/events", json={"batch": native_batch("n", 120)}, headers=headers, timeout=10).json()[
            "accepted"
        ]
        == 120
    )
    legacy = [
        {"type": "track", "eventName": "Legacy", "user_id": f"l{i}", "wallet_address": f"0x{i:040x}", "chain_id": 1}
        for i in range(30)
    ]
    assert (
        requests.post(f"{base}/sdk/event", json=legacy, headers={"X-API-Key": key}, timeout=10).json()["accepted"] == 30
    )

    errors = []
    segment = SegmentClient(key, host=base, sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    for i in range(20):
        segment.track(f"seg-user{i}", "Order Completed", {"revenue": i}, message_id=f"seg-{i}")
    segment.identify("seg-user1", {"plan": "pro"}, message_id="seg-identify")
    segment.page("seg-user1", name="Pricing", message_id="seg-page")
    rudder = RudderClient(key, host=base, sync_mode=True, gzip=True, on_error=lambda e, b: errors.append(e))
    for i in range(10):
        rudder.track(f"rs-user{i}", "Signed Up", {"i": i}, message_id=f"rs-{i}")
    assert errors == []
    total = 120 + 30 + 22 + 10

    wait_for(lambda: stored(settings, company) == total, 30, f"{total} events in ClickHouse")
    # End users are written by the entities stage, which follows persistence.
    wait_for(lambda: end_users(company) == 9 + 30 + 20 + 10, 30, "every end user in Postgres")
    segment_identify = requests.get(
        f"{base}/v1/companies/{company}/events", params={"type": "identify"}, headers=auth, timeout=10
    ).json()["items"]
    assert segment_identify[0]["traits"] == {"plan": "pro"}

    # Everything sent again (the SDKs keep their message ids): still the same count.
    requests.post(f"{base}/v1/events", json={"batch": native_batch("n", 120)}, headers=headers, timeout=10)
    for i in range(20):
        segment.track(f"seg-user{i}", "Order Completed", {"revenue": i}, message_id=f"seg-{i}")
    wait_for(lambda: caught_up(redis_client, settings), 20, "the resends to be processed")
    assert stored(settings, company) == total


def test_sigkill_of_the_worker_mid_stream_loses_nothing_and_stores_nothing_twice(system, settings, redis_client):
    base, processes = system
    company, key, _ = setup_company(base)
    headers = {"Authorization": f"Bearer {key}"}
    accepted = []

    def send() -> None:
        for batch in range(60):
            events = native_batch(f"k{batch}", 50)
            accepted.append(
                requests.post(f"{base}/v1/events", json=events, headers=headers, timeout=10).json()["accepted"]
            )
            time.sleep(0.02)

    sender = threading.Thread(target=send)
    sender.start()
    wait_for(lambda: stored(settings, company) > 0, 20, "the first events to be stored")
    processes["worker"].kill()
    killed_at = stored(settings, company)
    sender.join()
    processes["worker"].start()
    processes["worker"].wait_ready()
    expected = sum(accepted)
    assert expected == 3000
    assert killed_at < expected
    wait_for(lambda: stored(settings, company) >= expected, 60, f"{expected} events after the restart", interval=0.5)
    wait_for(lambda: caught_up(redis_client, settings), 30, "every entry acknowledged")
    assert stored(settings, company) == expected


def test_losing_the_dedup_filter_while_the_worker_runs_counts_nothing_twice(settings, redis_client):
    """The worker holds the shard's filter in memory, trusted after a rebuild; the filter's keys vanish
    from Redis (a flush, an eviction) between a batch and its resends: the worker notices, looks the
    resends up exactly, and stores each event once; after another rebuild, once still."""
    filter_env = {"DEDUP_SETTLE_SECONDS": "1", "DEDUP_FILTER_IDS_PER_DAY": "30000"}
    same_filter = dataclasses.replace(settings, dedup_settle_seconds=1, dedup_filter_ids_per_day=30_000)
    with running_system(("web", "worker", "scheduler"), **filter_env) as (base, _):
        company, key, _ = setup_company(base)
        headers = {"Authorization": f"Bearer {key}"}
        assert rebuild_dedup(same_filter, None, progress=False)["lost_meanwhile"] == []

        def post(prefix: str, n: int) -> None:
            answer = requests.post(f"{base}/v1/events", json=native_batch(prefix, n), headers=headers, timeout=10)
            assert answer.json()["accepted"] == n

        post("first", 100)
        wait_for(lambda: stored(settings, company) == 100, 30, "the first events stored")
        for key_name in redis_client.scan_iter(match=f"{redis_keys.PREFIX}:dedup:*"):
            redis_client.delete(key_name)
        post("first", 100)  # resends
        post("second", 50)
        wait_for(lambda: stored(settings, company) >= 150, 30, "the new events stored")
        wait_for(lambda: caught_up(redis_client, settings), 30, "every entry acknowledged")
        assert stored(settings, company) == 150
        assert rebuild_dedup(same_filter, company, progress=False)["ids"] == 150
        post("first", 100)
        post("second", 50)
        post("third", 10)
        wait_for(lambda: stored(settings, company) >= 160, 30, "the third events stored")
        wait_for(lambda: caught_up(redis_client, settings), 30, "every entry acknowledged")
        assert stored(settings, company) == 160
