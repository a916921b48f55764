"""Benchmark (b): persistence throughput, events/s from a Redis stream into ClickHouse by one pump in
one process, and, separately, of the entities pump into Postgres.

    .venv/bin/python bench/persist.py [--events 200000] [--companies 20]

Fills one stream shard with realistic enriched events (entries of 50, as ingest writes them), runs
the persist pump (workers/persist.py) in this process until every entry is acknowledged, then the
entities pump (workers/entities.py) over what it handed on, and reports events/s for each. Records
the figures in docs/benchmarks.md. Needs the services up.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from common import bench_settings, cpu_reference, prepare, record
from events import enriched_batches


def drain(client, pump) -> float:
    """Runs `pump` as the worker does (one long run) until its stream is read and acknowledged to the
    end; returns the seconds that took (not counting the run's final wait for more)."""
    import threading

    from adtivity.lease import Lease

    lease = Lease(client, f"bench-lease-{pump.kind}", ttl_seconds=600)
    lease.acquire()
    started = time.perf_counter()
    running = threading.Thread(target=pump.run, args=(lease, 600))
    running.start()
    last = client.xinfo_stream(pump.stream)["last-generated-id"]
    while True:
        info = client.xinfo_groups(pump.stream)[0]
        if info["pending"] == 0 and info["last-delivered-id"] == last:
            seconds = time.perf_counter() - started
            break
        time.sleep(0.005)
    client.delete(lease.key)  # the run ends at its next renewal
    running.join()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=20)
    args = parser.parse_args()

    settings = bench_settings(stream_shards=1)
    prepare(settings)
    import uuid

    import redis

    from models.clickhouse import clickhouse_client
    from models.db import open_database
    from models.redis_streams import encode_entry, stream_key
    from workers.entities import EntitiesPump
    from workers.persist import EventsPump

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    open_database(settings.database_url)
    clickhouse = clickhouse_client(settings.clickhouse_url, timeout=60)
    for table in ("events", "event_ids"):  # earlier runs' parts would be merged in the background meanwhile
        clickhouse.command(f"TRUNCATE TABLE {table}")
    rng = random.Random(11)
    companies = [str(uuid.uuid4()) for _ in range(args.companies)]
    started = time.perf_counter()
    made = 0
    pipe = client.pipeline(transaction=False)
    for company, events in enriched_batches(settings, rng, companies, args.events):
        pipe.xadd(stream_key(0), encode_entry(company, events, "bench"))
        made += len(events)
        if len(pipe) >= 200:
            pipe.execute()
    pipe.execute()
    print(f"filled {made} events in {time.perf_counter() - started:.1f} s")

    persist_seconds = drain(client, EventsPump(settings, client, lambda: clickhouse, 0))
    entities_seconds = drain(client, EntitiesPump(settings, client, 0))
    stored = sum(
        clickhouse.query(
            "SELECT count() FROM events WHERE company_id = toUUID(%(c)s)", parameters={"c": company}
        ).result_rows[0][0]
        for company in companies
    )
    lines = [
        f"Command: `.venv/bin/python bench/persist.py --events {args.events} --companies {args.companies}` "
        f"on {os.cpu_count()} cores (Redis, Postgres and ClickHouse 18.16 on the same machine).",
        "",
        "| pump (one, in one process) | events | seconds | events/s |",
        "|---|---|---|---|",
        f"| persist: stream to ClickHouse | {made:,} | {persist_seconds:.1f} | {made / persist_seconds:,.0f} |",
        f"| entities: to Postgres (end users, identities, wallets, sessions, payments) | {made:,} | "
        f"{entities_seconds:.1f} | {made / entities_seconds:,.0f} |",
        "",
        f"ClickHouse holds {stored:,} events afterwards; batches of up to {settings.persist_batch_events} events.",
    ]
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("Persistence (b)", lines)
    client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
