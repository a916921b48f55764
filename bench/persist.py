"""Benchmark (b): persistence throughput, events/s from a Redis stream into ClickHouse (with the
Postgres entities) by one worker process.

    .venv/bin/python bench/persist.py [--events 200000] [--companies 20]

Fills one stream shard with realistic enriched events (entries of 50, as ingest writes them), then
runs the persist pump of workers/persist.py in this one process until every entry is acknowledged,
and reports events/s. Records the figure in docs/benchmarks.md. Needs the services up.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time

from common import bench_settings, prepare, record

from events import batch


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=20)
    args = parser.parse_args()

    settings = bench_settings(stream_shards=1)
    prepare(settings)
    import uuid

    import msgspec
    import redis

    from models.clickhouse import clickhouse_client
    from models.db import open_database
    from models.streams import encode_entry, stream_key
    from web.ingest import wire
    from web.ingest.enrich import Enricher, RequestInfo
    from workers.lease import Lease
    from workers.persist import Persister

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    open_database(settings.database_url)
    clickhouse = clickhouse_client(settings.clickhouse_url, timeout=60)
    enricher = Enricher(settings)
    rng = random.Random(11)
    companies = [str(uuid.uuid4()) for _ in range(args.companies)]
    started = time.perf_counter()
    made = 0
    pipe = client.pipeline(transaction=False)
    while made < args.events:
        company = rng.choice(companies)
        now = dt.datetime.now(dt.timezone.utc)
        request = RequestInfo(company_id=company, received_at=now, sent_at=None, user_agent="", ip="203.0.113.9",
                              country="", request_id="bench")
        events = [enricher.build(msgspec.convert(raw, wire.NativeEvent).incoming(), request) for raw in batch(rng)]
        for event in events:
            event.session_id = event.session_id or f"s-{event.identity}"
        pipe.xadd(stream_key(0), encode_entry(company, events, "bench"))
        made += len(events)
        if len(pipe) >= 200:
            pipe.execute()
    pipe.execute()
    print(f"filled {made} events in {time.perf_counter() - started:.1f} s")

    persister = Persister(settings, client, clickhouse, 0)
    lease = Lease(client, "bench-lease", ttl_seconds=600)
    lease.acquire()
    started = time.perf_counter()
    persister.run(lease, 0)  # creates the group and claims nothing: warms the connections
    while True:
        persister.run(lease, 5)
        info = client.xinfo_groups(stream_key(0))[0]
        if info["pending"] == 0 and info["last-delivered-id"] == client.xinfo_stream(stream_key(0))["last-generated-id"]:
            break
    elapsed = time.perf_counter() - started - settings.persist_batch_seconds  # the last, empty read waits
    stored = sum(clickhouse.query("SELECT count() FROM events WHERE company_id = toUUID(%(c)s)",
                                  parameters={"c": company}).result_rows[0][0] for company in companies)
    rate = made / elapsed
    lines = [
        f"Command: `.venv/bin/python bench/persist.py --events {args.events} --companies {args.companies}` "
        f"on {os.cpu_count()} cores (Redis, Postgres and ClickHouse 18.16 on the same machine).",
        "",
        f"One persist pump in one process: {made:,} events in {elapsed:.1f} s = **{rate:,.0f} events/s** "
        f"(batches of up to {settings.persist_batch_events} events; entities upserted to Postgres in the same pass). "
        f"ClickHouse holds {stored:,} of them afterwards.",
    ]
    print("\n".join(lines))
    record("Persistence (b)", lines)
    client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
