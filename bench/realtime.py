"""Benchmark of the real-time metrics (issue 4): sustained events/s from the Redis streams to published
snapshots, and seconds from POST to visible in GET /realtime, p50 and p95.

    .venv/bin/python bench/realtime.py [--events 300000] [--companies 8] [--seconds 30] [--load-events-per-second 2000]

Throughput: builds realistic enriched events, starts the streams process from the Procfile on a fresh
app id, waits until it publishes, then writes all the events to the entities streams at once (what
the persist pump hands on) and times until the snapshots count every one; also reports the process's
resident memory.
Drift: kills the streams process with SIGKILL while it drains a backlog, restarts it on the same app
id and compares the settled counts with the events written. Latency: runs web, worker, scheduler and streams from the Procfile under a steady background load,
posts one probe event at a time to a company of its own and polls GET /realtime (read key) every
20 ms until the probe is counted. Records the figures in docs/benchmarks.md. Needs the services up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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
from events import enriched_batches, steady_load
from harness import group_usage

from tests.processes import procfile_command, stop_groups

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def process_env(**overrides: str) -> dict:
    return {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "STREAMS_APP_ID": f"adtivity-bench-{uuid.uuid4().hex[:12]}",
        **overrides,
    }


def spawn(name: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        procfile_command(name),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def backlog(settings, companies: list[str], events: int, seed: int) -> tuple[list[tuple[str, dict]], int]:
    """Entities-stream entries of realistic events for `companies`, and how many are not bots."""
    from models.redis_streams import encode_events, entities_stream_key, entry_fields, shard_for

    entries, humans = [], 0
    for company, built in enriched_batches(settings, random.Random(seed), companies, events):
        stream = entities_stream_key(shard_for(company, settings.stream_shards))
        entries.append((stream, entry_fields(company, "bench", encode_events(built))))
        humans += sum(1 for event in built if not event.is_bot)
    return entries, humans


def wait_published(client, since: float = 0.0) -> None:
    from models import redis_keys

    deadline = time.monotonic() + 120
    while float(client.get(redis_keys.REALTIME_AS_OF) or 0) <= since:
        if time.monotonic() > deadline:
            raise RuntimeError("the streams process published nothing within 2 minutes")
        time.sleep(0.01)


def counted(client, companies: list[str]) -> int:
    from models import redis_keys

    snapshots = client.mget([redis_keys.realtime_snapshot(company) for company in companies])
    return sum(json.loads(snapshot)["today"]["events"] for snapshot in snapshots if snapshot)


def write(client, entries: list[tuple[str, dict]]) -> None:
    with client.pipeline(transaction=False) as pipe:
        for stream, fields in entries:
            pipe.xadd(stream, fields)
        pipe.execute()


def throughput(settings, client, args) -> list[str]:
    companies = [str(uuid.uuid4()) for _ in range(args.companies)]
    entries, expected = backlog(settings, companies, args.events, seed=17)
    streams = spawn("streams", process_env())
    try:
        wait_published(client)
        started = time.monotonic()  # idle and ready: now the whole backlog arrives at once
        write(client, entries)
        total = 0
        while total < expected and time.monotonic() < started + 600:
            time.sleep(0.05)
            total = counted(client, companies)
        seconds = time.monotonic() - started
        memory, _ = group_usage(streams.pid)  # its own session: the process and its children
    finally:
        stop_groups([streams], 60)
    if total != expected:
        raise RuntimeError(f"snapshots count {total} of {expected} events")
    return [
        "| stream to snapshot (one streams process) | events | seconds | events/s | resident memory |",
        "|---|---|---|---|---|",
        f"| {args.companies} companies, a backlog written at once | {expected:,} | {seconds:.1f} | **{expected / seconds:,.0f}** | "
        f"{memory:.0f} MB |",
    ]


def drift_after_sigkill(settings, client, args) -> list[str]:
    """SIGKILL of the streams process a second into draining a backlog, a restart on the same app id
    (state recovered from the changelog), then the settled count against the truth."""
    companies = [str(uuid.uuid4()) for _ in range(args.companies)]
    entries, expected = backlog(settings, companies, args.events // 2, seed=23)
    env = process_env()
    streams = spawn("streams", env)
    try:
        wait_published(client)
        write(client, entries)
        time.sleep(1.0)
        at_kill = counted(client, companies)
        os.killpg(streams.pid, signal.SIGKILL)
        streams.wait(10)
        killed_at = time.time()
        streams = spawn("streams", env)
        wait_published(client, since=killed_at)
        recovered = time.monotonic()
        total, settled_since = -1, time.monotonic()
        while time.monotonic() < recovered + 300:
            now_counted = counted(client, companies)
            if now_counted != total:
                total, settled_since = now_counted, time.monotonic()
            elif total >= expected and time.monotonic() - settled_since > 5:
                break
            time.sleep(0.1)
    finally:
        stop_groups([streams], 60)
    return [
        f"SIGKILL after 1 s of draining {expected:,} events ({at_kill:,} counted at the kill), restart on the same "
        f"app id: settled at {total:,}, a drift of **{total - expected:+,}** events.",
    ]


def latency(settings, args) -> list[str]:
    load_company, load_key = bench_company(settings)
    probe_company, probe_key, read_key = bench_company(settings, ("write", "read"))
    env = process_env(PORT="18083")
    web = start(procfile_command("web"), env, 18083)
    others = [spawn(name, env) for name in ("worker", "scheduler", "streams")]
    base = "http://127.0.0.1:18083"
    stop_load = threading.Event()

    def counted(session: requests.Session) -> int:
        answer = session.get(
            f"{base}/v1/companies/{probe_company}/realtime", headers={"Authorization": f"Bearer {read_key}"}, timeout=10
        ).json()
        return answer["last_hour"]["events"]

    latencies: list[float] = []
    missed = 0
    loader = threading.Thread(
        target=steady_load, args=(f"{base}/v1/events", load_key, args.load_events_per_second, stop_load)
    )
    try:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while session.get(
            f"{base}/v1/companies/{probe_company}/realtime", headers={"Authorization": f"Bearer {read_key}"}, timeout=10
        ).json()["stale"]:
            if time.monotonic() > deadline:
                raise RuntimeError("no fresh snapshot within a minute")
            time.sleep(0.2)
        loader.start()
        time.sleep(3)
        finish = time.monotonic() + args.seconds
        while time.monotonic() < finish:
            target = len(latencies) + missed + 1
            sent = time.monotonic()
            session.post(
                f"{base}/v1/events",
                json={"type": "track", "name": "Probe", "user_id": "prober"},
                headers={"Authorization": f"Bearer {probe_key}", "User-Agent": CHROME},
                timeout=10,
            )
            while counted(session) < target and time.monotonic() < sent + 10:
                time.sleep(0.02)
            if counted(session) >= target:
                latencies.append(time.monotonic() - sent)
            else:
                missed += 1
            time.sleep(0.2)
    finally:
        stop_load.set()
        if loader.is_alive():
            loader.join()
        stop_groups([web, *others], 60)
    if not latencies:
        raise RuntimeError("no probe became visible")
    return [
        f"{len(latencies)} probes under {args.load_events_per_second:,} events/s of background load: POST to visible in "
        f"`/realtime` p50 **{statistics.median(latencies):.2f} s**, p95 **{percentile(latencies, 0.95):.2f} s**, "
        f"max {max(latencies):.2f} s; not visible within 10 s: {missed}.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--companies", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--load-events-per-second", type=int, default=2000)
    args = parser.parse_args()

    settings = bench_settings()
    prepare(settings)
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    lines = [
        f"Command: `.venv/bin/python bench/realtime.py --events {args.events} --companies {args.companies} --seconds "
        f"{args.seconds} --load-events-per-second {args.load_events_per_second}` on {os.cpu_count()} cores (Tansu, "
        "Redis, Postgres and ClickHouse on the same machine; for the latency, web, worker, scheduler and streams too).",
        "",
        *throughput(settings, client, args),
        "",
    ]
    client.flushdb()
    lines += [*drift_after_sigkill(settings, client, args), ""]
    client.flushdb()
    lines += latency(settings, args)
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("Real-time metrics", lines)
    client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
