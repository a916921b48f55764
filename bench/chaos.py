"""Crashes and outages under load (issue 7, part 2), with nothing lost and nothing counted twice.

    .venv/bin/python bench/chaos.py [--rounds 3] [--outage-seconds 60] [--events-per-second 3000]
    .venv/bin/python bench/chaos.py --short      # the form `make test` runs (tests/test_chaos.py)

While the load runs (harness.Load: a batch not answered 200 is sent again with the same message ids,
as an SDK does), each round does, one after another: SIGKILL the worker, the streams process, a web
worker (gunicorn starts another) and the scheduler (the only replica, so the leader); stop ClickHouse
for the outage (`bin/services stop clickhouse`, then `up`); freeze the broker for the outage (SIGSTOP,
then SIGCONT: Tansu keeps its log only in memory, so a restart would be the loss of a Kafka cluster's
disks, not an outage); SIGKILL the run's Redis (append-only, fsync always) and start it again.
Afterwards: every accepted event in ClickHouse exactly once, rollups equal to ClickHouse, real-time
counts against ClickHouse (drift reported). Prints one JSON document; records the figures in
docs/reliability.md unless `--no-record`. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time

from common import ROOT, bench_company, record
from harness import Fleet, Load, Run, check_lines, drain, verify

from models import redis_keys
from tests.processes import wait_for


def service_pid(name: str) -> int:
    path = ROOT / ".data" / "run" / f"{name}.pid"
    if not path.exists():
        raise SystemExit(f"{name} was not started by bin/services up, so this run cannot stop it")
    return int(path.read_text())


def clickhouse_outage(seconds: float) -> None:
    subprocess.run([str(ROOT / "bin" / "services"), "stop", "clickhouse"], check=True, capture_output=True)
    time.sleep(seconds)
    subprocess.run([str(ROOT / "bin" / "services"), "up"], check=True, capture_output=True)


def broker_outage(seconds: float) -> None:
    pid = service_pid("broker")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage-seconds", type=float, default=60)
    parser.add_argument("--pause-seconds", type=float, default=10, help="between two actions")
    parser.add_argument("--events-per-second", type=int, default=3000)
    parser.add_argument("--companies", type=int, default=4)
    parser.add_argument("--short", action="store_true", help="1 round, 8 s outages, 1,000 events/s, no record")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.short:
        args.rounds, args.outage_seconds, args.pause_seconds, args.events_per_second = 1, 8, 4, 1000
        args.no_record = True
    service_pid("broker")
    service_pid("clickhouse")

    run = Run(
        "chaos",
        PERSIST_CLAIM_IDLE_SECONDS="10",
        PERSIST_PUMP_SECONDS="3",
        SCHEDULER_LEASE_SECONDS="6",
        SCHEDULER_LEADER_CHECK_SECONDS="2",
    )
    client = run.client()
    companies = [bench_company(run.settings) for _ in range(args.companies)]
    fleet = Fleet(run.env, run.port)
    load = Load(fleet.base, companies, args.events_per_second, threads=2)

    def redis_restart(_: float) -> None:
        run.redis.kill()
        time.sleep(2)
        run.redis.start()

    actions = [
        ("SIGKILL worker", lambda _: fleet.kill("worker")),
        ("SIGKILL streams", lambda _: fleet.kill("streams")),
        ("SIGKILL a web worker", lambda _: fleet.kill_web_worker()),
        ("SIGKILL scheduler (leader)", lambda _: fleet.kill("scheduler")),
        ("ClickHouse stopped", clickhouse_outage),
        ("broker frozen", broker_outage),
        ("Redis (AOF) SIGKILL and restart", redis_restart),
    ]
    done: list[str] = []
    started = time.monotonic()
    try:
        fleet.start_all()
        wait_for(
            lambda: client.get(redis_keys.REALTIME_AS_OF) is not None,
            120,
            "the first real-time snapshot",
            tolerate=(Exception,),
        )
        load.start()
        time.sleep(args.pause_seconds)
        for round_number in range(1, args.rounds + 1):
            for name, action in actions:
                action(args.outage_seconds)
                done.append(f"round {round_number}: {name}")
                print(f"{time.monotonic() - started:6.1f} s  round {round_number}: {name}", flush=True)
                time.sleep(args.pause_seconds)
        load.stop()
        drain(run.settings, client)
        checks = verify(run.settings, client, load, realtime_settle_seconds=120)
    finally:
        fleet.stop_all()
        run.close()

    result = {
        "rounds": args.rounds,
        "actions": len(done),
        "outage_seconds": args.outage_seconds,
        "load": load.summary(),
        "restarts": dict(fleet.restarts),
        "processes_exited_on_their_own": dict(fleet.exited_on_their_own),
        "checks": checks,
    }
    print(json.dumps(result, indent=2))
    passed = checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"]
    if not args.no_record:
        record(
            "Crashes and outages under load",
            [
                f"Command: `.venv/bin/python bench/chaos.py --rounds {args.rounds} --outage-seconds {args.outage_seconds:g} "
                f"--events-per-second {args.events_per_second}` on {os.cpu_count()} cores, everything on this machine.",
                "",
                f"{args.rounds} rounds of: " + "; ".join(name for name, _ in actions) + ".",
                "",
                f"- Events accepted and checked: **{checks['events_checked']:,}** over {args.companies} companies "
                f"({result['load']['resent_batches']} batches resent on purpose, {result['load']['late_events']:,} late "
                f"events); answers seen by the load: {result['load']['answers']}.",
                *check_lines(checks),
                f"- Processes that exited by themselves and were started again: {result['processes_exited_on_their_own'] or 'none'}.",
            ],
            document="reliability.md",
        )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
