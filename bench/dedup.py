"""Benchmark: exactly once at any size. Persist events/s and CPU an event with N message ids already
stored for the company, N = 0, 10M and 100M by default, alternating (0, 10M, 100M, then 100M, 10M, 0
and so on for each round) so a drifting machine weighs on every size alike.

    .venv/bin/python bench/dedup.py [--sizes 0,10000000,100000000] [--events 200000] [--rounds 4]

Each size has a ClickHouse database of its own, filled once at the start: `event_ids` directly (not
through the API) with N random UUIDs for one company, received over the last 6.5 days (inside the
7-day window), then merged whole (OPTIMIZE ... FINAL), so no merge of the fill runs during a run.
For each run: empties `events` (and, for N = 0, `event_ids`) and the bench Redis database, waits
until ClickHouse merges nothing; rebuilds the de-duplication filter from the stored ids
(`rebuild-dedup`, timed; earlier runs' events add under 1% to N); fills one stream shard with `--events`
realistic enriched events of that company (random UUID message ids, as SDKs send), runs the persist
pump in this process until every entry is acknowledged, and reads the CPU that ClickHouse, this
process (the worker) and Redis used meanwhile from /proc. The filter is sized for the largest N, and
loaded into the pump's memory before the clock starts, as a running worker holds it (the load is
timed apart).
After the first round, one more run at the largest N with the filter emptied shows the exact
look-up alone (what every batch paid before the filter). Records the table in docs/benchmarks.md;
the last line printed is `dedup: 100M/empty persist ratio X.XX, cpu/event ratio Y.YY`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import random
import statistics
import subprocess
import time
import uuid

from common import bench_settings, cpu_reference, prepare, record
from events import enriched_batches
from persist import drain

FILL_DAYS = 6.5


def cpu_seconds(pid: int) -> float:
    """User and system time of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clickhouse_pid() -> int:
    return int(
        subprocess.run(["pgrep", "-o", "-f", "clickhouse-server"], capture_output=True, text=True).stdout.split()[0]
    )


def fill(clickhouse, company: str, n: int) -> float:
    """`n` random ids for `company` in `event_ids`, received over the last FILL_DAYS days; seconds taken,
    merges included."""
    started = time.perf_counter()
    now = int(time.time())
    step = 10_000_000
    for offset in range(0, n, step):
        clickhouse.command(
            "INSERT INTO event_ids (company_id, message_id, received_at, stream_entry) "
            f"SELECT toUUID('{company}'), toString(generateUUIDv4()), "
            f"toDateTime({now} - intDiv((number + {offset}) * {int(FILL_DAYS * 86400)}, {max(n, 1)})), 'bench-fill' "
            f"FROM numbers({min(step, n - offset)})"
        )
    clickhouse.command("OPTIMIZE TABLE event_ids FINAL")  # merged now, not in the background of a run
    settle(clickhouse)
    return time.perf_counter() - started


def settle(clickhouse) -> None:
    """Waits until ClickHouse merges nothing (earlier runs' inserts are merged before the next run)."""
    while clickhouse.query("SELECT count() FROM system.merges").result_rows[0][0]:
        time.sleep(1)


def one_run(settings, client, clickhouse, company: str, n: int, events: int, *, trusted: bool, seed: int) -> dict:
    from dedup.filter import ShardFilter
    from dedup.rebuild import Rebuild
    from models import redis_keys
    from models.redis_streams import encode_entry, stream_key
    from workers.persist import EventsPump

    client.flushdb()
    for table in ("events", "event_ids") if n == 0 else ("events",):
        clickhouse.command(f"TRUNCATE TABLE {table}")
    settle(clickhouse)
    started = time.perf_counter()
    rebuilt = Rebuild(settings, client, clickhouse).run().ids
    rebuild_seconds = time.perf_counter() - started
    filter_bytes = sum(client.strlen(key) for key in client.scan_iter(match=f"{redis_keys.PREFIX}:dedup:*:snap:*"))
    if not trusted:
        for key in client.scan_iter(match=f"{redis_keys.PREFIX}:dedup:*"):
            client.delete(key)
    ids_bytes = clickhouse.query(
        "SELECT sum(data_compressed_bytes) FROM system.parts WHERE active AND database = currentDatabase() "
        "AND table = 'event_ids'"
    ).result_rows[0][0]
    rng = random.Random(seed)  # new message ids each run (the store keeps earlier runs' ids); seeds >= 0
    pipe = client.pipeline(transaction=False)
    made = 0
    for batch_company, batch in enriched_batches(settings, rng, [company], events):
        pipe.xadd(stream_key(0), encode_entry(batch_company, batch, "bench"))
        made += len(batch)
        if len(pipe) >= 200:
            pipe.execute()
    pipe.execute()
    shard_filter = ShardFilter(settings, client, 0)
    started = time.perf_counter()
    shard_filter.check_and_add(company, [])  # a worker loads a shard's filter once, then keeps it
    load_seconds = time.perf_counter() - started
    pids = {"clickhouse": clickhouse_pid(), "worker": os.getpid(), "redis": int(client.info("server")["process_id"])}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    pump = EventsPump(settings, client, lambda: clickhouse, 0, shard_filter)
    seconds = drain(client, pump)
    cpu = {name: (cpu_seconds(pid) - before[name]) / made * 1e6 for name, pid in pids.items()}
    stored = clickhouse.query(
        "SELECT count() FROM events WHERE company_id = toUUID(%(c)s)", parameters={"c": company}
    ).result_rows[0][0]
    assert stored == made, (stored, made)
    return {
        "n": n,
        "trusted": trusted,
        "rate": made / seconds,
        "cpu": cpu,
        "rebuild": rebuild_seconds,
        "load": load_seconds,
        "rebuilt": rebuilt,
        "filter_bytes": filter_bytes,
        "ids_bytes": ids_bytes,
    }


def label(n: int) -> str:
    return "empty" if n == 0 else f"{n / 1e6:g}M"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,10000000,100000000")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bits", type=int, default=24, help="DEDUP_FILTER_BITS_PER_ID")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    largest = max(sizes)
    window_days = 7
    settings = bench_settings(
        stream_shards=1,
        dedup_window_days=window_days,
        dedup_filter_ids_per_day=max(1_000_000, math.ceil(largest * 1.2 / FILL_DAYS)),
        dedup_settle_seconds=1,
        dedup_filter_bits_per_id=args.bits,
    )
    prepare(settings)
    import redis

    from dedup.filter import GENERATIONS, FilterShape
    from models.clickhouse import clickhouse_client

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=120)
    company = str(uuid.uuid4())
    stores, filled = {}, {}
    for n in sizes:  # a database a size, filled once
        store = dataclasses.replace(settings, clickhouse_url=settings.clickhouse_url + f"_dedup_{label(n)}")
        prepare(store)
        stores[n] = (store, clickhouse_client(store.clickhouse_url, timeout=1200))
        for table in ("events", "event_ids"):
            stores[n][1].command(f"TRUNCATE TABLE {table}")
        filled[n] = fill(stores[n][1], company, n)
        print(f"{label(n)}: filled in {filled[n]:.0f} s", flush=True)
    runs = []
    for round_number in range(args.rounds):
        for n in sizes if round_number % 2 == 0 else list(reversed(sizes)):
            store, clickhouse = stores[n]
            run = one_run(store, client, clickhouse, company, n, args.events, trusted=True, seed=len(runs))
            runs.append(run)
            print(
                f"{label(n)}: {run['rate']:,.0f} events/s, cpu us/event "
                + ", ".join(f"{name} {value:.1f}" for name, value in run["cpu"].items()),
                flush=True,
            )
        if round_number == 0:
            store, clickhouse = stores[largest]
            exact = one_run(
                store, client, clickhouse, company, largest, args.events, trusted=False, seed=10**6
            )  # ids of no other run
            print(f"{label(largest)} exact look-up only: {exact['rate']:,.0f} events/s", flush=True)
    client.flushdb()
    for store, clickhouse in stores.values():
        clickhouse.command(f"DROP DATABASE IF EXISTS `{store.clickhouse_url.rsplit('/', 1)[1]}`")

    def summary(n: int) -> dict:
        chosen = [run for run in runs if run["n"] == n]
        return {
            "rate": statistics.median(run["rate"] for run in chosen),
            "cpu": {name: statistics.median(run["cpu"][name] for run in chosen) for name in chosen[0]["cpu"]},
            "rebuild": statistics.median(run["rebuild"] for run in chosen),
            "load": statistics.median(run["load"] for run in chosen),
            "fill": filled[n],
            "filter_bytes": chosen[0]["filter_bytes"],
            "ids_bytes": chosen[0]["ids_bytes"],
            "rates": [run["rate"] for run in chosen],
        }

    table = {n: summary(n) for n in sizes}
    shape = FilterShape.from_settings(settings)
    empty, big = table[min(sizes)], table[largest]
    rate_ratio = big["rate"] / empty["rate"]
    cpu_ratio = sum(big["cpu"].values()) / sum(empty["cpu"].values())
    lines = [
        f"Command: `.venv/bin/python bench/dedup.py --sizes {args.sizes} --events {args.events} --rounds "
        f"{args.rounds} --bits {args.bits}` on {os.cpu_count()} cores, {dt.date.today().isoformat()} (Redis 7, ClickHouse 18.16 and "
        f"the pump on the same machine); filter sized for {settings.dedup_filter_ids_per_day:,} ids a day, "
        f"{settings.dedup_filter_bits_per_id} bits an id, window {window_days} days.",
        "",
        "| ids stored for the company | persist events/s (median; each run) | CPU us/event: ClickHouse | worker | Redis | "
        "total | rebuild-dedup | a worker loading the filter | filling |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        row = table[n]
        cpu = row["cpu"]
        lines.append(
            f"| {label(n)} | **{row['rate']:,.0f}** ({', '.join(f'{rate:,.0f}' for rate in row['rates'])}) | "
            f"{cpu['clickhouse']:.1f} | {cpu['worker']:.1f} | {cpu['redis']:.1f} | {sum(cpu.values()):.1f} | "
            f"{row['rebuild']:.1f} s | {row['load']:.1f} s | {row['fill']:.0f} s |"
        )
    exact_cpu = exact["cpu"]
    lines += [
        f"| {label(largest)}, filter emptied (the exact look-up alone) | {exact['rate']:,.0f} | "
        f"{exact_cpu['clickhouse']:.1f} | {exact_cpu['worker']:.1f} | {exact_cpu['redis']:.1f} | "
        f"{sum(exact_cpu.values()):.1f} | - | - | - |",
        "",
        f"At {label(largest)}: the filter's snapshots take {big['filter_bytes'] / 1e6:,.0f} MB of Redis and as "
        f"much of the worker's memory ({GENERATIONS} generations of {shape.generation_bytes / 1e6:,.0f} MB, "
        f"{big['filter_bytes'] * 8 / max(largest, 1):.1f} bits a stored id); `event_ids` takes "
        f"{big['ids_bytes'] / 1e6:,.0f} MB on disk ({big['ids_bytes'] / max(largest, 1):.1f} bytes an id, compressed).",
        cpu_reference(),
        "",
        f"dedup: {label(largest)}/empty persist ratio {rate_ratio:.2f}, cpu/event ratio {cpu_ratio:.2f}",
    ]
    print("\n".join(lines))
    record("Exactly once at any size: de-duplication against N stored ids", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
