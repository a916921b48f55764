"""Benchmark: the de-duplication filter alone (dedup/filter.py), for sizing it. For each bits-an-id
setting: the share of new ids it says it may have seen (false positives, each an exact look-up) when
its four generations are as full as their size allows, and the worker's time to check and add an id.

    .venv/bin/python bench/dedup_filter.py [--ids-per-day 2000000] [--bits 8,12,16,20,24]

Bitmaps are filled in memory with the filter's own placement (random 64-bit hashes stand for the
ids' hashes); the check-and-add time is measured through Redis (journal append included) on 20,000
real message ids a call, as the persist pump calls it. Records the table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import uuid

import numpy as np
import redis
from common import bench_settings, cpu_reference, record

from dedup.filter import GENERATIONS, FilterShape, ShardFilter, all_bits_set, set_bits


def false_positive_share(shape: FilterShape, ids_per_generation: int, rng: np.random.Generator) -> float:
    """New ids found in any of four generations each holding `ids_per_generation` ids."""
    probes = shape.bit_offsets(rng.integers(0, 2**64, 1_000_000, dtype=np.uint64, endpoint=False))
    found = np.zeros(len(probes), dtype=bool)
    for _ in range(GENERATIONS):
        bitmap = np.zeros(shape.generation_bytes, dtype=np.uint8)
        for start in range(0, ids_per_generation, 5_000_000):
            count = min(5_000_000, ids_per_generation - start)
            set_bits(bitmap, shape.bit_offsets(rng.integers(0, 2**64, count, dtype=np.uint64, endpoint=False)))
        found |= all_bits_set(bitmap, probes)
    return float(found.mean())


def check_and_add_microseconds(settings, calls: int = 10) -> float:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    shard_filter = ShardFilter(settings, client, 0)
    shard_filter.check_and_add("bench", [])  # loaded once, as a worker keeps it
    batches = [[str(uuid.uuid4()) for _ in range(20_000)] for _ in range(calls)]
    started = time.perf_counter()
    for batch in batches:
        shard_filter.check_and_add("bench", batch)
    seconds = time.perf_counter() - started
    client.flushdb()
    return seconds / (calls * 20_000) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids-per-day", type=int, default=2_000_000)
    parser.add_argument("--bits", default="8,12,16,20,24")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    base = bench_settings(dedup_filter_ids_per_day=args.ids_per_day)
    lines = [
        f"Command: `.venv/bin/python bench/dedup_filter.py --ids-per-day {args.ids_per_day} --bits {args.bits}` "
        f"on {os.cpu_count()} cores; a 7-day window, every generation as full as its size allows.",
        "",
        "| bits an id | hashes | false positives (new ids looked up exactly) | memory a billion ids in the window "
        "| check and add, us an id |",
        "|---|---|---|---|---|",
    ]
    for bits in (int(value) for value in args.bits.split(",")):
        settings = dataclasses.replace(base, dedup_filter_bits_per_id=bits)
        shape = FilterShape.from_settings(settings)
        ids_per_generation = args.ids_per_day * shape.generation_ms // 86_400_000
        share = false_positive_share(shape, ids_per_generation, rng)
        per_billion = bits / 8 * GENERATIONS / (GENERATIONS - 1)  # GB: a window and a third of generations
        lines.append(
            f"| {bits} | {shape.hashes} | {share:.3%} | {per_billion:.1f} GB | "
            f"{check_and_add_microseconds(settings):.2f} |"
        )
        print(lines[-1], flush=True)
    lines.append(cpu_reference())
    print("\n".join(lines))
    record("The de-duplication filter alone: false positives and memory by size", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
