"""CPU per event of each tier of the cluster of bin/cluster, and the capacity model built from it.

    .venv/bin/python bench/cluster_capacity.py [--rates 600,1800] [--seconds 45] [--no-record]

Needs a running cluster (`bin/cluster up`). Measures every part idle (what it costs with no events:
merges, polls, heartbeats), then under a steady load at each of two rates through both web
processes (harness.Load, batches of 50 events). A tier's CPU is a line through the two loaded
points: its slope is the tier's CPU an event at the margin; at low rates much of a tier's cost is a
cost a batch (the persist pump inserts about once a second a shard, whatever the rate), which the
slope leaves out and the line's intercept keeps. Tiers: web, worker, streams, scheduler (two processes each),
Redis Cluster (6 nodes), Redis for Dramatiq's queues, ClickHouse (4 nodes: 2 shards x 2 replicas,
so every row is written and merged twice), ZooKeeper, the broker, Postgres. Then the cores of each
tier for 10,000, 100,000 and 1,000,000 events/s at 60% busy, from the line. Prints one JSON
document; records both tables in docs/scaling.md unless `--no-record`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from collections import defaultdict

from common import ROOT, bench_company, record
from harness import Load, cpu_seconds, process_stats

from adtivity.settings import Settings

RUN = ROOT / ".data" / "cluster" / "run"
ENV_FILE = ROOT / ".data" / "cluster" / "env"
WEB = ("http://127.0.0.1:8100", "http://127.0.0.1:8101")
RATES = (10_000, 100_000, 1_000_000)
TARGET_BUSY = 0.6  # cores are planned at 60% busy: room for bursts, merges and a lost node's share
TIERS = {
    "web": "web",
    "worker": "worker",
    "streams": "streams",
    "scheduler": "scheduler",
    "redis": "Redis Cluster",
    "clickhouse": "ClickHouse",
    "zookeeper": "ZooKeeper",
    "broker": "broker",
}


def tier_of_part(name: str) -> str:
    return TIERS[name.split("-", 1)[0]]


def usage() -> dict[str, float]:
    """CPU seconds so far of each tier: the cluster's parts by process group (bin/cluster starts
    each in a session of its own), Postgres and Dramatiq's Redis by command name."""
    groups = {int(path.read_text()): tier_of_part(path.stem) for path in RUN.glob("*.pid")}
    seconds: dict[str, float] = defaultdict(float)
    for _, command, fields in process_stats():
        tier = groups.get(int(fields[2]))
        if tier is None and command.startswith("postgres"):
            tier = "Postgres"
        elif tier is None and command.startswith("redis-server"):
            tier = "Redis (Dramatiq queues)"
        if tier is not None:
            seconds[tier] += cpu_seconds(fields)
    seconds["load generator"] = sum(os.times()[:2])
    return dict(seconds)


def per_second(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {tier: (after.get(tier, 0.0) - before.get(tier, 0.0)) / seconds for tier in after}


def loaded(companies: list[tuple[str, str]], rate: int, seconds: float) -> tuple[float, dict[str, float], dict]:
    """(events/s accepted, cores of each tier) during `seconds` of load at `rate`, after a warm-up."""
    loads = [
        Load(base, share, rate // 2, threads=1) for base, share in zip(WEB, (companies[:2], companies[2:]), strict=True)
    ]
    for load in loads:
        load.start()
    time.sleep(10)  # warm-up: connections, batch sizes settling, the first rollups
    accepted_before = sum(load.events_accepted for load in loads)
    before, started = usage(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    busy = per_second(before, usage(), elapsed)
    events = sum(load.events_accepted for load in loads) - accepted_before
    for load in loads:
        load.stop()
    return events / elapsed, busy, {"answers": [load.summary()["answers"] for load in loads]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="600,1800", help="the two loads, events/s")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    low_rate, high_rate = (int(rate) for rate in args.rates.split(","))
    environ = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    settings = Settings.from_env(environ)
    companies = [bench_company(settings) for _ in range(4)]

    start = usage()
    time.sleep(args.idle_seconds)
    idle = per_second(start, usage(), args.idle_seconds)
    low, low_cores, low_info = loaded(companies, low_rate, args.seconds)
    high, high_cores, high_info = loaded(companies, high_rate, args.seconds)

    tiers = [tier for tier in high_cores if tier != "load generator"]
    slope = {tier: max(0.0, (high_cores[tier] - low_cores.get(tier, 0.0)) / (high - low)) for tier in tiers}
    intercept = {tier: max(0.0, high_cores[tier] - slope[tier] * high) for tier in tiers}
    per_event_us = {tier: slope[tier] * 1e6 for tier in tiers}
    plan = {
        tier: {str(r): round((intercept[tier] + slope[tier] * r) / TARGET_BUSY, 1) for r in RATES}
        for tier in sorted(tiers, key=lambda t: -per_event_us[t])
    }
    rate = high
    result = {
        "events_per_second": [round(low), round(high)],
        "cores_idle": {tier: round(idle.get(tier, 0.0), 3) for tier in tiers},
        "cores_low": {tier: round(low_cores.get(tier, 0.0), 3) for tier in tiers},
        "cores_high": {tier: round(high_cores[tier], 3) for tier in high_cores},
        "us_per_event_at_the_margin": {tier: round(per_event_us[tier], 1) for tier in tiers},
        "us_per_event_at_the_high_rate": {tier: round(high_cores[tier] / high * 1e6, 1) for tier in tiers},
        "total_us_per_event_at_the_margin": round(sum(per_event_us.values()), 1),
        "cores_at_60_percent": plan,
        "answers": [low_info["answers"], high_info["answers"]],
    }
    print(json.dumps(result, indent=2))
    if not args.no_record:
        today = dt.date.today().isoformat()
        rows = [
            f"| {tier} | {per_event_us[tier]:.1f} | {high_cores[tier] / high * 1e6:.1f} | {idle.get(tier, 0.0):.3f} | "
            + " | ".join(f"{plan[tier][str(r)]:,}" for r in RATES)
            + " |"
            for tier in plan
        ]
        record(
            "Measured on the cluster",
            [
                f"Command: `bin/cluster up`, then `.venv/bin/python bench/cluster_capacity.py --rates {args.rates} "
                f"--seconds {args.seconds:g}` on {os.cpu_count()} cores, {today}: **{round(low):,}** and "
                f"**{round(rate):,}** events/s accepted through both web processes (batches of 50), the whole "
                "cluster and the load generator on this machine.",
                "",
                f"| tier | CPU µs an event, at the margin | µs an event at {round(rate):,}/s | cores idle "
                "| cores for 10,000/s | 100,000/s | 1,000,000/s |",
                "|---|---|---|---|---|---|---|",
                *rows,
                f"| **all** | **{sum(per_event_us.values()):.1f}** | "
                f"{sum(high_cores[t] for t in tiers) / high * 1e6:.1f} | {sum(idle.get(t, 0.0) for t in tiers):.3f} | "
                + " | ".join(f"{sum(plan[t][str(r)] for t in plan):,.1f}" for r in RATES)
                + " |",
                "",
                f"Cores at {TARGET_BUSY:.0%} busy: (the line's intercept + its slope x the rate) / 0.6. The idle "
                "column is what a tier costs with no events at all (merges, polls, heartbeats).",
            ],
            document="scaling.md",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
