"""Benchmark of the query API: filtered queries answered by ClickHouse over 10 million events of one
company in 30 days (20 other companies around it), and unfiltered ones from the answer cache.

    .venv/bin/python bench/query.py [--events 10000000] [--others 20] [--other-events 250000] [--tries 40] [--rate 500]

Events are generated inside ClickHouse (bench/analytics.py's generator). Filtered: --tries sequential
POSTs of a two-filter query with one dimension over the 30 days (country is DE or FR, and the page
path contains /docs, by browser: users, events, page views), each asking a different limit so none
is a cache hit; p50, p95 and the slowest. Also an unfiltered distinct-count breakdown (ClickHouse too).
Cached: wrk (bench/get.lua with a body, 20 connections, exponential gaps) POSTs an unfiltered query at
about --rate requests/s; p50 and p99. Records docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import tempfile
import time

import redis
import requests
from analytics import generate, load, settle
from common import ROOT, bench_company, bench_settings, cpu_reference, percentile, prepare, record, start

from rollups.compute import rollup_company_now
from tests.processes import procfile_command, stop_groups


def timed_queries(url: str, key: str, body: dict, tries: int) -> dict:
    """Sequential POSTs, each asking a different limit so none is a cache hit; the sources that answered."""
    session = requests.Session()
    times, sources = [], set()
    for i in range(tries):
        began = time.perf_counter()
        answer = session.post(
            url, json={**body, "limit": 10 + i}, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        times.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        sources.add(answer.json()["meta"]["source"])
    return {"p50": statistics.median(times), "p95": percentile(times, 0.95), "slowest": max(times), "sources": sources}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--others", type=int, default=20)
    parser.add_argument("--other-events", type=int, default=250_000)
    parser.add_argument("--tries", type=int, default=40)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    settings = bench_settings()
    prepare(settings)
    from models.clickhouse import clickhouse_client

    clickhouse = clickhouse_client(settings.clickhouse_url, timeout=3600)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    first_day = today - dt.timedelta(days=29)
    company, read_key = bench_company(settings, ("read",))
    generated = generate(clickhouse, company, first_day, 30 * 86400, args.events, users=400_000)
    for _ in range(args.others):
        other, _ = bench_company(settings, ("read",))
        generated += generate(clickhouse, other, first_day, 30 * 86400, args.other_events, users=20_000)
    settle(clickhouse)
    # The company's rollups, complete up to now (a second later than the last event was stored).
    time.sleep(1.1)
    redis_client = redis.Redis.from_url(settings.redis_url)
    thirty_days = dataclasses.replace(settings, rollup_window_hours=31 * 24)
    rollup_company_now(thirty_days, redis_client, clickhouse, company)

    env = {**os.environ, "PORT": "18085", "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    web = start(procfile_command("web"), env, 18085)
    url = f"http://127.0.0.1:18085/v1/companies/{company}/query"
    span = [first_day.date().isoformat(), today.date().isoformat()]
    filtered_body = {
        "metrics": ["users", "events", "page_views"],
        "date_range": span,
        "dimensions": ["browser"],
        "filters": [["is", "country", ["DE", "FR"]], ["contains", "page_path", ["/docs"]]],
    }
    unfiltered_body = {"metrics": ["events", "page_views"], "date_range": span, "dimensions": ["time:day"]}
    settled = [first_day.date().isoformat(), (today - dt.timedelta(days=1)).date().isoformat()]
    try:
        timed_queries(url, read_key, filtered_body, 3)  # warm-up: connections, ClickHouse's caches
        filtered = timed_queries(url, read_key, filtered_body, args.tries)
        distinct = timed_queries(
            url, read_key, {"metrics": ["users"], "date_range": span, "dimensions": ["country"]}, args.tries // 2
        )
        from_rollups = timed_queries(url, read_key, {**unfiltered_body, "date_range": settled}, args.tries)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body_file:
            json.dump(unfiltered_body, body_file)
        load(url, read_key, args.rate, 3, body_file=body_file.name)  # warm-up, and the answer cached
        cached = load(url, read_key, args.rate, args.seconds, body_file=body_file.name)
    finally:
        stop_groups([web], 60)
        os.unlink(body_file.name)

    lines = [
        f"Command: `.venv/bin/python bench/query.py --events {args.events} --others {args.others} --other-events "
        f"{args.other_events} --tries {args.tries} --rate {args.rate}` on {os.cpu_count()} cores (ClickHouse 18.16, "
        "Postgres, Redis, gunicorn and wrk on the same machine). Generated in ClickHouse in "
        f"{generated:.0f} s: {args.events:,} events of one company over 30 days, {args.others} other companies of "
        f"{args.other_events:,} each.",
        "",
        "| query (30 days) | source | p50 ms | p95 ms | slowest ms |",
        "|---|---|---|---|---|",
        f"| two filters (country is DE or FR, page path contains /docs), by browser: users, events, page views, each "
        f"a cache miss | ClickHouse | {filtered['p50']:.0f} | **{filtered['p95']:.0f}** | {filtered['slowest']:.0f} |",
        f"| no filter, users by country, each a cache miss | ClickHouse | {distinct['p50']:.0f} | "
        f"{distinct['p95']:.0f} | {distinct['slowest']:.0f} |",
        f"| no filter, events and page views by day over the 29 days before today, each a cache miss | "
        f"{', '.join(sorted(from_rollups['sources']))} | {from_rollups['p50']:.0f} | {from_rollups['p95']:.0f} | "
        f"{from_rollups['slowest']:.0f} |",
        "",
        f"Unfiltered (events and page views by day) at {cached['rps']:.0f} requests/s (wrk, 20 connections, "
        f"exponential gaps), answered from the cache: p50 {cached['p50']:.1f} ms, **p99 {cached['p99']:.1f} ms**, "
        f"slowest {cached['slowest']:.1f} ms, {cached['errors']} errors.",
    ]
    lines += [
        "",
        "The company's rollups were computed before the reads (one `rollup_company_now` over 31 days), so "
        "the unfiltered query over whole past days is answered from them (after one ClickHouse count that "
        "checks no event of those days was accepted later).",
        "",
        f"Targets: the filtered query's p95 under 300 ms: **{'met' if filtered['p95'] < 300 else 'not met'}**; "
        f"unfiltered p99 under 10 ms at about {args.rate} requests/s: "
        f"**{'met' if cached['p99'] < 10 and cached['errors'] == 0 else 'not met'}**.",
        "",
        cpu_reference(),
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("Query API", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
