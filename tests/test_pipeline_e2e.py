"""End to end through the real processes: web (gunicorn), worker (dramatiq), scheduler, on the real
stores. Events in all three formats, sent by our own requests and by the Segment and RudderStack
SDKs from PyPI, land exactly once; resends change nothing; a worker killed with SIGKILL mid-stream
loses nothing and stores nothing twice."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from models.db import database
from models.redis_streams import PERSIST_GROUP, stream_key
from models.tracking import EndUser
from tests.pipeline_helpers import setup_company, stored
from tests.processes import wait_for

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
