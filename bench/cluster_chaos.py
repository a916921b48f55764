"""Crashes under load on the cluster of bin/cluster, with nothing lost and nothing counted twice.

    .venv/bin/python bench/cluster_chaos.py [--events-per-second 1500] [--pause-seconds 15]
    .venv/bin/python bench/cluster_chaos.py --short   # the form `make cluster-test` runs

Needs a running cluster (`bin/cluster up`). While the load runs through both web processes (harness.Load:
a batch not answered 200 is sent again with the same message ids, as an SDK does), one after another:
SIGKILL a Redis master, the one REDIS_URL names (its replica takes over; the old master comes back as
a replica; the processes started afterwards find the cluster through REDIS_CLUSTER_NODES); stop a
ClickHouse replica (SIGTERM) and start it again; SIGKILL one web, one worker, one streams and one
scheduler process, each started again after the pause, as a supervisor would. Afterwards: every
accepted event in ClickHouse exactly once, rollups equal to ClickHouse, real-time against ClickHouse
(drift reported). Prints one JSON document; records the figures in docs/reliability.md unless
`--no-record`. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from urllib.parse import urlsplit

from common import ROOT, bench_company, record
from harness import Load, check_lines, drain, verify

from adtivity.settings import Settings
from models.redis_client import redis_client
from tests.processes import wait_for

CLUSTER = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "bin" / "cluster")]
ENV_FILE = ROOT / ".data" / "cluster" / "env"
WEB = ("http://127.0.0.1:8100", "http://127.0.0.1:8101")
REDIS_PORTS = range(7001, 7007)


def cluster(*args: str) -> str:
    return subprocess.run([*CLUSTER, *args], check=True, capture_output=True, text=True).stdout


def cluster_info(port: int) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True).stdout


def a_redis_master(entry: int) -> int:
    """The master REDIS_URL names (`entry`) when it is one: the processes started again afterwards
    then find the cluster through REDIS_CLUSTER_NODES; else another master."""
    nodes = subprocess.run(
        ["redis-cli", "-p", str(entry), "cluster", "nodes"], capture_output=True, text=True, check=True
    ).stdout
    masters = []
    for line in nodes.splitlines():
        fields = line.split()
        if "master" in fields[2] and "fail" not in fields[2]:
            masters.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
    return entry if entry in masters else masters[0]


def kill_redis_master(settings: Settings, pause: float) -> str:
    port = a_redis_master(urlsplit(settings.redis_url).port)
    other = next(p for p in REDIS_PORTS if p != port)
    cluster("kill", f"redis-{port}")
    wait_for(lambda: "cluster_state:ok" in cluster_info(other), 60, "the failover", interval=0.5)
    time.sleep(pause)
    cluster("start", f"redis-{port}")
    return f"SIGKILL Redis master :{port}, its replica took over, it came back as a replica"


def stop_clickhouse_replica(pause: float) -> str:
    cluster("stop", "clickhouse-n4")
    time.sleep(pause)
    cluster("start", "clickhouse-n4")
    return "ClickHouse replica n4 (shard 2) stopped, then started"


def kill_process(name: str):
    def action(pause: float) -> str:
        cluster("kill", name)
        time.sleep(pause)
        cluster("start", name)
        return f"SIGKILL {name}, started again"

    return action


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-per-second", type=int, default=1500)
    parser.add_argument("--pause-seconds", type=float, default=15, help="between two actions, and outages")
    parser.add_argument("--companies", type=int, default=4)
    parser.add_argument("--short", action="store_true", help="600 events/s, 6 s pauses, no record")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.short:
        args.events_per_second, args.pause_seconds, args.no_record = 600, 6, True
    environ = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    settings = Settings.from_env(environ)
    client = redis_client(settings, timeout=10)
    companies = [bench_company(settings) for _ in range(args.companies)]
    half = len(companies) // 2
    loads = [
        Load(base, share, args.events_per_second // 2, threads=1)
        for base, share in zip(WEB, (companies[:half], companies[half:]), strict=True)
    ]
    actions = [
        lambda pause: kill_redis_master(settings, pause),
        stop_clickhouse_replica,
        kill_process("web-1"),
        kill_process("worker-1"),
        kill_process("streams-1"),
        kill_process("scheduler-1"),
    ]
    done: list[str] = []
    started = time.monotonic()
    for load in loads:
        load.start()
    time.sleep(args.pause_seconds)
    for action in actions:
        done.append(action(args.pause_seconds))
        print(f"{time.monotonic() - started:6.1f} s  {done[-1]}", flush=True)
        time.sleep(args.pause_seconds)
    for load in loads:
        load.stop()
    drain(settings, client)
    checks = [verify(settings, client, load, realtime_settle_seconds=120) for load in loads]
    down = [line.split()[0] for line in cluster("status").splitlines() if line.split()[1] == "down"]
    result = {
        "actions": done,
        "events_per_second": args.events_per_second,
        "load": [load.summary() for load in loads],
        "parts_down_afterwards": down,
        "checks": {
            "events_checked": sum(c["events_checked"] for c in checks),
            "clickhouse_exactly_once": all(c["clickhouse_exactly_once"] for c in checks),
            "rollups_equal_clickhouse": all(c["rollups_equal_clickhouse"] for c in checks),
            "realtime_drift_events": sum(c["realtime_drift_events"] for c in checks),
            "problems": [problem for c in checks for problem in c["problems"]],
        },
    }
    print(json.dumps(result, indent=2))
    totals = result["checks"]
    passed = totals["clickhouse_exactly_once"] and totals["rollups_equal_clickhouse"] and not down
    if not args.no_record:
        record(
            "Crashes under load on a cluster",
            [
                f"Command: `bin/cluster up`, then `.venv/bin/python bench/cluster_chaos.py --events-per-second "
                f"{args.events_per_second} --pause-seconds {args.pause_seconds:g}` on {os.cpu_count()} cores: the "
                "whole cluster (3+3 Redis, 2x2 ClickHouse with ZooKeeper, the broker, two of each process) on this machine.",
                "",
                "One after another: " + "; ".join(done) + ".",
                "",
                f"- Events accepted and checked: **{totals['events_checked']:,}** over {args.companies} companies, "
                f"through both web processes; answers seen by the load: {[load['answers'] for load in result['load']]}.",
                *check_lines(totals),
            ],
            document="reliability.md",
        )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
