"""Benchmark (a): ingest throughput and latency into gunicorn, beside a naive baseline.

    .venv/bin/python bench/ingest_throughput.py [--seconds 15] [--rounds 3] [--warmup 5] [--connections 32] [--workers 2]

Sends batches of 50 realistic events (about 400-500 bytes each, with their timestamps and the
batch's sent_at, as the browser SDK sends them) with wrk to (1) our web process and (2)
bench/naive_app.py (stdlib JSON, one un-pipelined XADD per event), both under gunicorn with the
same worker count, on this machine. Each is first loaded for `--warmup` seconds, not counted (the
first seconds of a fresh server fill its caches). Then the two take turns, round after round, so
that a change in the machine's speed (its cores are shared) lands on both; the ratio reported is the
median of the rounds' ratios. Prints events/s and p50/p99 latency per round, and records them in
docs/benchmarks.md. Needs the services up (`make services`) and wrk (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile

from common import ROOT, bench_company, bench_settings, cpu_reference, prepare, record, start
from events import batch

from tests.processes import stop_groups


def sdk_body(rng: random.Random) -> dict:
    """A batch as web/static/adtivity.js sends it: each event with its own timestamp (the last minute's),
    the batch with the moment it was sent."""
    now = dt.datetime.now(dt.UTC)
    events = [{**made, "timestamp": js_time(now - dt.timedelta(seconds=rng.uniform(0, 60)))} for made in batch(rng)]
    return {"batch": events, "sent_at": js_time(now)}


def js_time(moment: dt.datetime) -> str:
    """As JavaScript's Date.toISOString() writes it."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_wrk(url: str, key: str, body_file: str, seconds: int, connections: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "bench" / "post.lua"), url],
        env={**os.environ, "BODY_FILE": body_file, "KEY": key},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests_per_second = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {p: re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", output).groups() for p in ("50", "99")}
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": requests_per_second,
        "events_per_second": requests_per_second * 50,
        "p50_ms": float(latency["50"][0]) * scale[latency["50"][1]],
        "p99_ms": float(latency["99"][0]) * scale[latency["99"][1]],
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15, help="each server's share of a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=5, help="seconds of load on each server before the rounds, not counted"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    settings = bench_settings()
    prepare(settings)
    _, key = bench_company(settings)
    body = json.dumps(sdk_body(random.Random(7)), separators=(",", ":")).encode()  # as JSON.stringify writes it
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        handle.write(body)
    env = {"PORT": "18080", "WEB_WORKERS": str(args.workers), "PYTHONPATH": str(ROOT)}
    servers = {
        "adtivity": (
            [sys.executable, "-m", "gunicorn", "--config", "web/gunicorn_conf.py", "web.app:get_app()"],
            18080,
        ),
        "naive": (
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(args.workers),
                "-b",
                "127.0.0.1:18081",
                "--chdir",
                str(ROOT / "bench"),
                "naive_app:app",
            ],
            18081,
        ),
    }
    rounds: list[dict[str, dict]] = []
    processes = [start(command, env, port) for command, port in servers.values()]
    try:
        for _, port in servers.values():  # caches filled, scripts loaded, code paths warm: both alike
            run_wrk(f"http://127.0.0.1:{port}/v1/events", key, handle.name, args.warmup, args.connections)
        for number in range(args.rounds):
            order = list(servers) if number % 2 == 0 else list(reversed(servers))
            rounds.append(
                {
                    name: run_wrk(
                        f"http://127.0.0.1:{servers[name][1]}/v1/events",
                        key,
                        handle.name,
                        args.seconds,
                        args.connections,
                    )
                    for name in order
                }
            )
    finally:
        stop_groups(processes, 20)
    import redis

    redis.Redis.from_url(settings.redis_url).flushdb()
    os.unlink(handle.name)

    ratios = [run["adtivity"]["events_per_second"] / run["naive"]["events_per_second"] for run in rounds]
    lines = [
        f"Command: `.venv/bin/python bench/ingest_throughput.py --seconds {args.seconds} --rounds {args.rounds} --warmup {args.warmup} --connections "
        f"{args.connections} --workers {args.workers}` on {os.cpu_count()} cores (wrk and Redis on the same machine).",
        f"Body: 50 events as the browser SDK sends them (a timestamp each, the batch's sent_at), "
        f"{len(body) // 50} bytes each on average. Both servers run throughout; after {args.warmup} s of load on each (not "
        f"counted), each round loads one for {args.seconds} s, then the other (the order alternates), so a drift in the "
        f"machine's speed falls on both.",
        "",
        "| round | adtivity events/s | naive events/s | ratio | adtivity p50 / p99 ms | naive p50 / p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, (run, ratio) in enumerate(zip(rounds, ratios, strict=False), 1):
        ours, naive = run["adtivity"], run["naive"]
        lines.append(
            f"| {number} | {ours['events_per_second']:,.0f} | {naive['events_per_second']:,.0f} | {ratio:.2f}x | "
            f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} | {naive['p50_ms']:.1f} / {naive['p99_ms']:.1f} | "
            f"{ours['non_2xx'] + naive['non_2xx']} |"
        )
    ours_median = statistics.median(run["adtivity"]["events_per_second"] for run in rounds)
    naive_median = statistics.median(run["naive"]["events_per_second"] for run in rounds)
    lines += [
        "",
        f"Medians: adtivity {ours_median:,.0f} events/s, naive {naive_median:,.0f} events/s; "
        f"Adtivity / naive: **{statistics.median(ratios):.2f}x** (median of the rounds' ratios).",
    ]
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("Ingest (a)", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
