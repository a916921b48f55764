"""The whole system under sustained load (issue 7, part 1): all four processes and every service on
this machine, realistic mixed traffic for several companies (web2 and web3, resent batches, late
events), a set rate of new events for `--seconds` (resent batches come on top).

    .venv/bin/python bench/load.py [--seconds 300] [--events-per-second 10000] [--companies 6] [--threads 8]
                                   [--web-workers 2] [--stream-shards 1] [--fsync everysec]

Reports accepted events/s, the streams' backlog over the run (its least-squares slope: flat is about
0), p50/p99 ingest latency, POST-to-ClickHouse and POST-to-realtime p50/p95 (probes to a company of
their own), peak resident memory of each process, the cores each process and service used and the
whole machine's CPU time per accepted event, how long the backlog took to clear after the load
stopped; then checks ClickHouse exactly once, rollups and real-time against it. Records the figures
in docs/benchmarks.md (`--no-record` to skip). Needs the services up (`make services`).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import bench_company, cpu_reference, record
from harness import Fleet, LagSampler, Load, Probes, Run, drain, machine_cpu, verify

from adtivity.settings import Settings
from models import redis_keys
from tests.processes import wait_for


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--events-per-second", type=int, default=10_000)
    parser.add_argument("--companies", type=int, default=6)
    parser.add_argument(
        "--threads", type=int, default=8, help="load generator threads (4 could not send 10,000 events/s here)"
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--stream-shards",
        type=int,
        default=Settings.stream_shards,
        help="STREAM_SHARDS: each shard is a persist and an entities pump, and an insert a second",
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "everysec", "no-aof"),
        default="everysec",
        help="the Redis append-only file's fsync policy (chaos uses always)",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    run = Run("load", args.fsync, WEB_WORKERS=str(args.web_workers), STREAM_SHARDS=str(args.stream_shards))
    client = run.client()
    companies = [bench_company(run.settings) for _ in range(args.companies)]
    probe_company, probe_write, probe_read = bench_company(run.settings, ("write", "read"))
    fleet = Fleet(run.env, run.port)
    lag = LagSampler(run.settings, client)
    load = Load(fleet.base, companies, args.events_per_second, threads=args.threads)
    probes = Probes(fleet.base, run.settings, probe_company, probe_write, probe_read)
    try:
        fleet.start_all()
        wait_for(
            lambda: client.get(redis_keys.REALTIME_AS_OF) is not None,
            120,
            "the first real-time snapshot",
            tolerate=(Exception,),
        )
        lag.start()
        load.start()
        probes.start()
        cpu_before, machine_before, accepted_before = dict(fleet.cpu_seconds), machine_cpu(), load.events_accepted
        time.sleep(args.seconds)
        machine_after, accepted_in_window = machine_cpu(), load.events_accepted - accepted_before
        cores_used = {
            name: round((fleet.cpu_seconds[name] - cpu_before.get(name, 0)) / args.seconds, 2) for name in fleet.NAMES
        }
        cores_used.update(
            {
                name: round((machine_after[name] - machine_before.get(name, 0)) / args.seconds, 2)
                for name in machine_after
            }
        )
        machine_us_per_event = round(
            (machine_after["machine"] - machine_before["machine"]) / max(accepted_in_window, 1) * 1e6
        )
        load.stop()
        probes.stop()
        stopped = time.monotonic()
        drain(run.settings, client)
        clear_seconds = time.monotonic() - stopped
        lag.stop()
        checks = verify(run.settings, client, load)
    finally:
        fleet.stop_all()
        run.close()

    result = {
        "load": load.summary(),
        "backlog": lag.trend(skip_seconds=30),
        "backlog_cleared_seconds_after_stop": round(clear_seconds, 1),
        "freshness": probes.summary(),
        "peak_rss_mb": {name: round(mb) for name, mb in fleet.peak_rss.items()},
        "cores_used": cores_used,
        "machine_cpu_us_per_event": machine_us_per_event,
        "processes_exited_on_their_own": dict(fleet.exited_on_their_own),
        "checks": checks,
    }
    print(json.dumps(result, indent=2))
    summary, backlog, fresh = result["load"], result["backlog"], result["freshness"]
    lines = [
        f"Command: `.venv/bin/python bench/load.py --seconds {args.seconds} --events-per-second "
        f"{args.events_per_second} --companies {args.companies} --threads {args.threads} --web-workers "
        f"{args.web_workers} --stream-shards {args.stream_shards} --fsync {args.fsync}` on {os.cpu_count()} cores: web, worker, scheduler, streams, Postgres, "
        f"Redis (append-only, fsync {args.fsync}), ClickHouse, the broker and the load generator all on this machine.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| new events accepted a second (asked {args.events_per_second:,}; target 10,000) | **{summary['events_per_second']:,}** "
        f"({summary['events_accepted']:,} in {summary['seconds']} s; {summary['resent_batches']} batches resent, "
        f"{summary['late_events']:,} late events) |",
        f"| ingest latency p50 / p99 | {summary['p50_ms']} ms / {summary['p99_ms']} ms |",
        f"| stream backlog after 30 s warm-up: mean / max / last (entries of 50 events) | {backlog.get('mean_entries')} / "
        f"{backlog.get('max_entries')} / {backlog.get('last_entries')} (peak by group: {backlog.get('peak_by_group')}) |",
        f"| backlog slope (entries/s; flat is about 0) | **{backlog.get('slope_entries_per_second')}** |",
        f"| backlog cleared after the load stopped | {result['backlog_cleared_seconds_after_stop']} s |",
        f"| POST to ClickHouse p50 / p95 | {fresh['to_clickhouse'].get('p50_s')} s / **{fresh['to_clickhouse'].get('p95_s')} s** |",
        f"| POST to real-time p50 / p95 | {fresh['to_realtime'].get('p50_s')} s / **{fresh['to_realtime'].get('p95_s')} s** |",
        "| peak resident memory | " + ", ".join(f"{name} {mb} MB" for name, mb in result["peak_rss_mb"].items()) + " |",
        f"| cores used during the load (of {os.cpu_count()}) | "
        + ", ".join(f"{name} {cores}" for name, cores in cores_used.items())
        + " |",
        f"| CPU time of the whole machine per accepted event | {machine_us_per_event} us |",
        f"| answers | {summary['answers']} |",
        f"| checks | ClickHouse exactly once: {checks['clickhouse_exactly_once']}; rollups equal ClickHouse: "
        f"{checks['rollups_equal_clickhouse']}; real-time drift: {checks['realtime_drift_events']} events |",
        "",
        cpu_reference(),
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("Whole system under sustained load", lines)
    return 0 if checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
