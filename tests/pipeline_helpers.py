"""What many tests do with the pipeline: run the pumps in the test's own thread (drain), count what
ClickHouse stored, send events through the API, make a week of varied events, set up a company over
HTTP against the real processes, run queued Dramatiq jobs with a real worker."""

from __future__ import annotations

import datetime as dt
import random
import time

import dramatiq
import requests

from adtivity.lease import Lease
from models.clickhouse import clickhouse_client
from tests.ingest_helpers import CHROME, GOOGLEBOT
from workers.entities import EntitiesPump
from workers.persist import EventsPump

PAGES = ["/", "/pricing", "/docs", "/blog"]


def run_pumps(pumps, redis_client, seconds: float) -> None:
    for pump in pumps:
        lease = Lease(redis_client, f"test-lease-{pump.kind}-{pump.shard}", ttl_seconds=30)
        lease.acquire()
        pump.run(lease, seconds)
        lease.release()


def drain(settings, redis_client, clickhouse=None, *, seconds: float = 0.1, events_pump=EventsPump) -> None:
    """Runs one short persist pump, then one entities pump, per shard in this thread, as the worker would."""
    clickhouse = clickhouse or clickhouse_client(settings.clickhouse_url)
    shards = range(settings.stream_shards)
    run_pumps(
        [events_pump(settings, redis_client, lambda: clickhouse, shard) for shard in shards], redis_client, seconds
    )
    run_pumps([EntitiesPump(settings, redis_client, shard) for shard in shards], redis_client, seconds)


def stored(settings, company_id: str, where: str = "1") -> int:
    return (
        clickhouse_client(settings.clickhouse_url)
        .query(f"SELECT count() FROM events WHERE company_id = toUUID(%(c)s) AND {where}", parameters={"c": company_id})
        .result_rows[0][0]
    )


NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def week_of_events(rng: random.Random, prefix: str, n: int, *, days: int = 7) -> list[dict]:
    events = []
    for i in range(n):
        moment = NOW - dt.timedelta(seconds=rng.randrange(days * 86400))
        identity = (
            {"user_id": f"u{rng.randrange(40)}"} if rng.random() < 0.5 else {"anonymous_id": f"a{rng.randrange(60)}"}
        )
        base = {
            "message_id": f"{prefix}-{i}",
            "timestamp": moment.isoformat() + "Z",
            **identity,
            "context": {
                "userAgent": GOOGLEBOT if rng.random() < 0.05 else CHROME,
                "page": {"path": rng.choice(PAGES), "referrer": rng.choice(["", "https://news.ycombinator.com/x"])},
            },
        }
        kind = rng.random()
        if kind < 0.4:
            events.append({**base, "type": "page"})
        elif kind < 0.7:
            events.append({**base, "type": "track", "name": rng.choice(["Signup", "Search", "Add To Cart"])})
        elif kind < 0.8:
            events.append(
                {
                    **base,
                    "type": "transaction",
                    "chain_id": rng.choice(["1", "137"]),
                    "status": "confirmed",
                    "wallet_address": f"0x{rng.randrange(9):040x}",
                    "tx_hash": f"0x{i:064x}",
                    "value": str(rng.randrange(1, 10**6)),
                    "token": "ETH",
                    "contract_address": f"0x{rng.randrange(3):040x}",
                }
            )
        else:
            events.append(
                {
                    **base,
                    "type": "payment",
                    "payment_id": f"p{i}",
                    "status": rng.choice(["completed", "failed"]),
                    "amount": f"{rng.randrange(1, 100)}.{rng.randrange(100):02d}",
                    "currency": rng.choice(["USD", "EUR"]),
                }
            )
    return events


def send(api, key: str, events: list[dict]) -> None:
    for start in range(0, len(events), 200):
        answer = api.post("/v1/events", auth=key, json=events[start : start + 200])
        assert answer.status_code == 200, answer.text


def setup_company(base: str) -> tuple[str, str, dict]:
    email = f"e2e{time.time_ns()}@example.com"
    requests.post(f"{base}/v1/auth/register", json={"email": email, "password": "an end to end passphrase"}, timeout=10)
    token = requests.post(
        f"{base}/v1/auth/login", json={"email": email, "password": "an end to end passphrase"}, timeout=10
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    company = requests.post(f"{base}/v1/companies", json={"name": "E2E"}, headers=auth, timeout=10).json()["id"]
    key = requests.post(f"{base}/v1/companies/{company}/keys", json={"kind": "write"}, headers=auth, timeout=10).json()[
        "key"
    ]
    return company, key, auth


def run_queued_jobs(settings) -> None:
    """Runs what the web app enqueued in Redis, with a real Dramatiq worker, until the queue is empty."""
    from workers.main import build_runtime

    broker = build_runtime(settings).broker
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        broker.join("default", timeout=30_000)
        worker.join()
    finally:
        worker.stop()
