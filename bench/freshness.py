"""Benchmark (c): freshness, seconds from POST to queryable in ClickHouse, p50 and p95, through the
real processes (web, worker, scheduler from the Procfile) under a steady background load.

    .venv/bin/python bench/freshness.py [--seconds 30] [--load-events-per-second 2000] [--probes-per-second 5]

Probe events with unique message ids are posted while background batches of 50 flow; a poller asks
ClickHouse every 50 ms which probes are visible and records when each first was. Records the
figures in docs/benchmarks.md. Needs the services up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
import uuid

import requests
from common import (
    ROOT,
    bench_company,
    bench_settings,
    cpu_reference,
    percentile,
    prepare,
    record,
    start,
)
from events import steady_load

from tests.processes import procfile_command, stop_groups


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--load-events-per-second", type=int, default=2000)
    parser.add_argument("--probes-per-second", type=int, default=5)
    args = parser.parse_args()

    settings = bench_settings()
    prepare(settings)
    import redis

    from models.clickhouse import clickhouse_client

    redis.Redis.from_url(settings.redis_url).flushdb()
    company, key = bench_company(settings)
    env = {**os.environ, "PORT": "18082", "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    web = start(procfile_command("web"), env, 18082)
    others = [
        subprocess.Popen(
            procfile_command(name),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name in ("worker", "scheduler")
    ]
    base = "http://127.0.0.1:18082/v1/events"
    headers = {"Authorization": f"Bearer {key}"}
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    finished = threading.Event()

    def probes() -> None:
        session = requests.Session()
        while not finished.is_set():
            message_id = f"probe-{uuid.uuid4()}"
            sent_at[message_id] = time.monotonic()
            session.post(
                base,
                json={"type": "track", "name": "Probe", "user_id": "prober", "message_id": message_id},
                headers=headers,
                timeout=10,
            )
            time.sleep(1 / args.probes_per_second)

    def poll() -> None:
        clickhouse = clickhouse_client(settings.clickhouse_url)
        while not finished.is_set() or len(seen_at) < len(sent_at):
            waiting = [m for m in list(sent_at) if m not in seen_at]
            if waiting:
                try:
                    found = clickhouse.query(
                        "SELECT message_id FROM events WHERE company_id = toUUID(%(c)s) AND message_id IN %(ids)s",
                        parameters={"c": company, "ids": tuple(waiting)},
                    ).result_rows
                except Exception as error:  # a slow or failed poll is retried, not fatal to the measurement
                    print(f"poll failed: {type(error).__name__}: {error}")
                    found = []
                now = time.monotonic()
                for (message_id,) in found:
                    seen_at.setdefault(message_id, now)
            if finished.is_set() and time.monotonic() > stopped_at + 60:
                break
            time.sleep(0.05)

    stopped_at = float("inf")
    threads = [
        threading.Thread(target=steady_load, args=(base, key, args.load_events_per_second, finished)),
        threading.Thread(target=probes),
        threading.Thread(target=poll),
    ]
    try:
        time.sleep(8)  # the worker and scheduler start their pumps
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stopped_at = time.monotonic()
        finished.set()
        for thread in threads:
            thread.join()
    finally:
        stop_groups([web, *others], 60)
    latencies = [seen_at[m] - sent_at[m] for m in sent_at if m in seen_at]
    lost = len(sent_at) - len(latencies)
    if not latencies:
        print(f"no probe became visible ({len(sent_at)} sent)")
        return 1
    lines = [
        f"Command: `.venv/bin/python bench/freshness.py --seconds {args.seconds} --load-events-per-second "
        f"{args.load_events_per_second} --probes-per-second {args.probes_per_second}` on {os.cpu_count()} cores "
        "(web, worker, scheduler from the Procfile and every service on the same machine).",
        "",
        f"{len(latencies)} probes: POST to queryable in ClickHouse p50 **{statistics.median(latencies):.2f} s**, "
        f"p95 **{percentile(latencies, 0.95):.2f} s**, max {max(latencies):.2f} s; not seen within a minute: {lost}.",
    ]
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("Freshness (c)", lines)
    redis.Redis.from_url(settings.redis_url).flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
