"""Benchmark of rollups and analytics reads (issue 5): seconds to roll up a day of a company with 10
million events, and latency of overview and time-series reads over 90 days at 500 requests/s.

    .venv/bin/python bench/analytics.py [--day-events 10000000] [--history-events-per-day 20000] [--rate 500] [--seconds 20]

Events are generated inside ClickHouse (INSERT ... SELECT over system.numbers: realistic mixes of pages,
tracks, wallets, transactions and payments, a few hundred thousand users), so building them costs no
Python. Rollup: one company's yesterday (UTC) holds --day-events events; one `rollup_company_now` run
with a 24-hour window is timed. Reads: another company has 90 days of history, rolled up; wrk
(bench/get.lua: 20 connections, exponential gaps) sends overview and time-series requests (read key)
at about --rate requests/s each to gunicorn from the Procfile, and reports p50, p99 and the slowest. Records docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import statistics
import subprocess
import time

from common import (
    ROOT,
    bench_company,
    bench_settings,
    cpu_reference,
    prepare,
    record,
    start,
)

from tests.processes import procfile_command, stop_groups


def generate(clickhouse, company_id: str, start: dt.datetime, seconds: int, events: int, users: int) -> float:
    """Inserts `events` events spread over `seconds` from `start`; returns the seconds it took."""
    began = time.perf_counter()
    first = int(start.replace(tzinfo=dt.UTC).timestamp())
    clickhouse.command(
        f"""
        INSERT INTO events (company_id, message_id, type, name, event_time, received_at, user_id, anonymous_id,
                            session_id, page_path, referrer_domain, utm_source, utm_campaign, country, browser, os,
                            device, wallet_address, chain_id, status, tx_value_num, token, contract_address,
                            payment_id, amount, currency)
        SELECT toUUID('{company_id}'), concat('g', toString(number)),
               ['page', 'page', 'track', 'track', 'wallet_connect', 'transaction', 'payment'][(number % 7) + 1] AS kind,
               if(kind = 'track', ['Signup', 'Search', 'Add To Cart'][(intHash32(number) % 3) + 1], ''),
               toDateTime({first} + intDiv(number * {seconds}, {events})) AS t, t,
               if(number % 2 = 0, concat('u', toString(intHash32(number) % {users})), ''),
               concat('a', toString(intHash32(number + 1) % {users * 2})),
               concat('s', toString(intHash32(number) % {users}), '-', toString(intDiv(toUInt32(t), 1800))),
               ['/', '/pricing', '/docs', '/blog', '/app'][(number % 5) + 1],
               ['', 'google.com', 'news.ycombinator.com', 't.co'][(intHash32(number) % 4) + 1],
               ['', 'newsletter', 'twitter'][(number % 3) + 1], ['', 'launch', 'winter'][(number % 3) + 1],
               ['US', 'DE', 'FR', 'IN', 'BR'][(intHash32(number) % 5) + 1],
               ['Chrome', 'Safari', 'Firefox'][(number % 3) + 1], ['macOS', 'Windows', 'iOS', 'Android'][(number % 4) + 1],
               ['desktop', 'mobile'][(number % 2) + 1],
               if(kind IN ('wallet_connect', 'transaction'), concat('0x', toString(intHash32(number) % 50000)), ''),
               if(kind IN ('wallet_connect', 'transaction'), ['1', '137', '8453'][(number % 3) + 1], ''),
               if(kind = 'transaction', ['confirmed', 'failed'][(number % 2) + 1],
                  if(kind = 'payment', ['started', 'completed', 'failed'][(number % 3) + 1], '')),
               if(kind = 'transaction', toFloat64(intHash32(number) % 1000), 0), if(kind = 'transaction', 'ETH', ''),
               if(kind = 'transaction', concat('0xc', toString(number % 20)), ''),
               if(kind = 'payment', concat('p', toString(number)), ''),
               if(kind = 'payment', toDecimal64(49, 2), toDecimal64(0, 2)), if(kind = 'payment', 'USD', '')
        FROM system.numbers LIMIT {events}""",
        settings={"max_execution_time": 3600},
    )
    return time.perf_counter() - began


def settle(clickhouse, seconds: float = 180) -> None:
    """Waits until ClickHouse has no merge running (they follow big inserts and take the CPU)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and clickhouse.query("SELECT count() FROM system.merges").result_rows[0][0]:
        time.sleep(1)


def load(url: str, key: str, rate: int, seconds: int, connections: int = 20, body_file: str | None = None) -> dict:
    """wrk with bench/get.lua: each connection waits an exponential gap between requests, sized so the
    whole comes to about `rate` requests/s (arrivals like independent users, not lock-step bursts)."""
    mean_gap_ms = connections * 1000 / rate - 2  # about 2 ms of each cycle is the request itself
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench" / "get.lua"), url],
        env={
            **os.environ,
            "KEY": key,
            "MEAN_GAP_MS": str(mean_gap_ms),
            **({"BODY_FILE": body_file} if body_file else {}),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def milliseconds(pattern: str) -> float:
        number, unit = re.search(pattern, output).groups()
        return float(number) * scale[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": milliseconds(r"\s50%\s+([\d.]+)(us|ms|s)"),
        "p99": milliseconds(r"\s99%\s+([\d.]+)(us|ms|s)"),
        "slowest": milliseconds(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def uncached(base: str, key: str, today: dt.datetime, endpoint: str, extra: str, tries: int = 15) -> dict:
    """Sequential requests that each miss the answer cache (every one asks for a different range)."""
    import requests

    session = requests.Session()
    times = []
    for i in range(tries):
        span = f"from={(today - dt.timedelta(days=89 + i)).date()}&to={(today + dt.timedelta(days=1)).date()}"
        began = time.perf_counter()
        answer = session.get(f"{base}/{endpoint}?{span}{extra}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        times.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return {"median": statistics.median(times), "max": max(times)}


def forget(settings, companies: list[str]) -> None:
    """Deletes and purges the benchmark's companies, so later runs (and benchmarks) do not roll them up."""
    import uuid

    from models.accounts import Company
    from models.db import database, utcnow
    from workers.companies import purge_company_data

    with database.connection_context():
        Company.update(deleted_at=utcnow()).where(Company.id.in_([uuid.UUID(c) for c in companies])).execute()
    for company in companies:
        purge_company_data(settings, uuid.UUID(company))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--day-events", type=int, default=10_000_000)
    parser.add_argument("--history-events-per-day", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()

    settings = bench_settings()
    prepare(settings)
    import redis

    from models.clickhouse import clickhouse_client
    from rollups.compute import rollup_company_now

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    clickhouse = clickhouse_client(settings.clickhouse_url, timeout=3600)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)

    history, _, read_key = bench_company(settings, ("write", "read"))
    generate(
        clickhouse, history, today - dt.timedelta(days=90), 90 * 86400, 90 * args.history_events_per_day, users=20_000
    )
    rollup_company_now(dataclasses.replace(settings, rollup_window_hours=91 * 24), client, clickhouse, history)

    settle(clickhouse)
    env = {**os.environ, "PORT": "18084", "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    web = start(procfile_command("web"), env, 18084)
    base = f"http://127.0.0.1:18084/v1/companies/{history}/analytics"
    span = f"from={(today - dt.timedelta(days=89)).date()}&to={(today + dt.timedelta(days=1)).date()}"
    try:
        load(f"{base}/overview?{span}", read_key, args.rate, 3)  # warm-up: connections, caches
        overview = load(f"{base}/overview?{span}", read_key, args.rate, args.seconds)
        series = load(f"{base}/timeseries?{span}&metric=events&interval=day", read_key, args.rate, args.seconds)
        misses = {
            f"{endpoint}{extra}": uncached(base, read_key, today, endpoint, extra)
            for endpoint, extra in (
                ("overview", ""),
                ("timeseries", "&metric=events&interval=day"),
                ("timeseries", "&metric=users&interval=week&tz=Europe/Paris"),
                ("active-users", ""),
            )
        }
    finally:
        stop_groups([web], 60)

    # After the reads: ClickHouse's merges of ten million new rows would otherwise share the CPU with them.
    big, _ = bench_company(settings)
    inserted = generate(clickhouse, big, today - dt.timedelta(days=1), 86400, args.day_events, users=400_000)
    one_day = dataclasses.replace(settings, rollup_window_hours=24)
    began = time.perf_counter()
    done = rollup_company_now(one_day, client, clickhouse, big)
    rollup_seconds = time.perf_counter() - began

    lines = [
        f"Command: `.venv/bin/python bench/analytics.py --day-events {args.day_events} --history-events-per-day "
        f"{args.history_events_per_day} --rate {args.rate} --seconds {args.seconds}` on {os.cpu_count()} cores "
        "(ClickHouse 18.16, Postgres, Redis, gunicorn and wrk on the same machine).",
        "",
        f"Rollup of one company's day of {args.day_events:,} events (generated in {inserted:.0f} s): "
        f"**{rollup_seconds:.1f} s** ({done['rows']:,} rows and sketches written).",
        "",
        "| read (read key, 90 days of rollups) | requests/s | p50 | p99 | slowest | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in (("overview", overview), ("time series, by day", series)):
        lines.append(
            f"| {name} | {result['rps']:.0f} | {result['p50']:.1f} ms | **{result['p99']:.1f} ms** | "
            f"{result['slowest']:.1f} ms | {result['errors']} |"
        )
    lines += [
        "",
        "Answers not in the cache yet (each request a new range, one at a time, no other load):",
        "",
        "| request (90 days) | median | slowest |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {miss['median']:.1f} ms | {miss['max']:.1f} ms |" for name, miss in misses.items()]
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("Rollups and analytics reads", lines)
    forget(settings, [big, history])
    client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
