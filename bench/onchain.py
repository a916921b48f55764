"""Benchmark of on-chain verification (chain/verify.py) against a local anvil chain (bin/localchain).

    .venv/bin/python bench/onchain.py [--transactions 2000] [--per-block 200] [--confirmations 12]
                                      [--delay-transactions 20] [--block-seconds 2] [--poll-seconds 1]

Throughput: --transactions plain transfers are sent with automine off and mined --per-block to a
block; their reports enter `chain_transactions` as the entities pump writes them (chain/feed.py's
upsert); verification rounds then run back to back, with --confirmations blocks mined after the
first, until every hash is final. Prints hashes verified per second (by the round that first looks them
all up: receipts, blocks, Postgres writes and the ClickHouse export) and JSON-RPC calls per
transaction over its whole life.
Delay: anvil mines a block every --block-seconds (3 confirmations), a round runs every --poll-seconds,
and --delay-transactions transfers are sent one by one and reported at once; for each, the time from
its block's timestamp to the end of the round that exported it to ClickHouse as confirmed (from then
on the query API and funnels count it; the rollups behind /analytics add up to ROLLUP_EVERY_SECONDS).
Records docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import time

from common import bench_company, bench_settings, cpu_reference, percentile, prepare, record

from chain.feed import UPSERT_CHAIN_TRANSACTIONS
from chain.rpc import ChainRpc
from chain.verify import verify_chain
from models.chain import ChainTransaction
from models.clickhouse import clickhouse_client
from models.db import database
from models.jsonrows import rows_json
from tests.chain_helpers import CHAIN_ID, LocalChain


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def report(company_id: str, hashes: list[str], at: dt.datetime) -> None:
    """The rows the entities pump writes for these reports."""
    rows = [[company_id, CHAIN_ID, tx_hash.lower(), at, at, "submitted", "", "", ""] for tx_hash in hashes]
    with database.connection_context():
        database.execute_sql(UPSERT_CHAIN_TRANSACTIONS, (rows_json(rows),))


def unfinished(company_id: str) -> int:
    with database.connection_context():
        return (
            ChainTransaction.select().where(ChainTransaction.company_id == company_id, ~ChainTransaction.final).count()
        )


def throughput(settings, chain: LocalChain, transactions: int, per_block: int) -> dict:
    company_id = bench_company(settings)[0]
    chain.automine(False)
    hashes = []
    for start in range(0, transactions, per_block):
        for i in range(start, min(start + per_block, transactions)):
            hashes.append(chain.send(chain.accounts[i % 10], chain.accounts[(i + 1) % 10], 10**12 + i))
        chain.mine(1)
    report(company_id, hashes, utcnow())
    rpc = ChainRpc(CHAIN_ID, (chain.url,), timeout=30, batch_size=settings.chain_batch_size)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    now = utcnow()
    began = time.perf_counter()
    first = verify_chain(settings, rpc, clickhouse, now=now)
    first_seconds = time.perf_counter() - began
    if first.looked_up != transactions:
        raise RuntimeError(f"the first round looked up {first.looked_up} of {transactions}")
    chain.mine(settings.confirmations(CHAIN_ID))
    rounds = 1
    while unfinished(company_id):
        now += dt.timedelta(seconds=settings.chain_poll_seconds)
        verify_chain(settings, rpc, clickhouse, now=now)
        rounds += 1
        if rounds > 50:
            raise RuntimeError("hashes never became final")
    calls = sum(rpc.calls.values())
    return {
        "per_second": transactions / first_seconds,
        "calls_per_transaction": calls / transactions,
        "calls": dict(rpc.calls),
        "rounds": rounds,
    }


def delay(settings, chain: LocalChain, count: int, block_seconds: int, poll_seconds: float) -> list[float]:
    company_id = bench_company(settings)[0]
    fast = dataclasses.replace(
        settings, chain_confirmations=(f"{CHAIN_ID}=3",), chain_poll_seconds=max(1, round(poll_seconds))
    )
    chain.automine(False)
    chain.rpc("evm_setIntervalMining", [block_seconds])
    rpc = ChainRpc(CHAIN_ID, (chain.url,), timeout=30, batch_size=settings.chain_batch_size)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    sent: list[str] = []
    delays: list[float] = []
    deadline = time.monotonic() + count * block_seconds + 60
    next_send = time.monotonic()
    while (len(delays) < count) and time.monotonic() < deadline:
        if len(sent) < count and time.monotonic() >= next_send:
            sent.append(chain.send(chain.accounts[0], chain.accounts[1], 10**12 + len(sent)).lower())
            report(company_id, sent[-1:], utcnow())
            next_send += block_seconds * 0.7
        verify_chain(fast, rpc, clickhouse, now=utcnow())
        exported = time.time()
        with database.connection_context():
            done = list(
                ChainTransaction.select().where(
                    ChainTransaction.company_id == company_id,
                    ChainTransaction.final,
                    ChainTransaction.exported_version == ChainTransaction.version,
                    ChainTransaction.tx_hash.in_(sent),
                )
            )
        for row in done[len(delays) :]:
            block = chain.w3.eth.get_block(row.block_number)
            delays.append(exported - block["timestamp"])
        time.sleep(poll_seconds)
    return delays


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--per-block", type=int, default=200)
    parser.add_argument("--confirmations", type=int, default=12)
    parser.add_argument("--delay-transactions", type=int, default=20)
    parser.add_argument("--block-seconds", type=int, default=2)
    parser.add_argument("--poll-seconds", type=int, default=1)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    chain = LocalChain()
    try:
        settings = bench_settings(
            chain_rpc_urls=(f"{CHAIN_ID}={chain.url}",),
            chain_confirmations=(f"{CHAIN_ID}={args.confirmations}",),
            chain_max_checks_per_round=10_000,
            chain_max_checks_per_company=10_000,
        )
        prepare(settings)
        with database.connection_context():  # a fresh anvil makes the same hashes as the last run's
            ChainTransaction.delete().where(ChainTransaction.chain_id == CHAIN_ID).execute()
        measured = throughput(settings, chain, args.transactions, args.per_block)
        delays = delay(settings, chain, args.delay_transactions, args.block_seconds, args.poll_seconds)
    finally:
        chain.stop()
    reference = cpu_reference()
    lines = [
        "`.venv/bin/python bench/onchain.py "
        f"--transactions {args.transactions} --per-block {args.per_block} --confirmations {args.confirmations} "
        f"--delay-transactions {args.delay_transactions} --block-seconds {args.block_seconds} "
        f"--poll-seconds {args.poll_seconds:g}`",
        "",
        "| figure | value |",
        "|---|---|",
        f"| hashes verified per second (the first round: receipts, blocks, Postgres, ClickHouse; batches of {settings.chain_batch_size}) | "
        f"**{measured['per_second']:,.0f}** |",
        f"| JSON-RPC calls per transaction over its life ({args.per_block} to a block, {args.confirmations} "
        f"confirmations, {measured['rounds']} rounds) | **{measured['calls_per_transaction']:.3f}** "
        f"({', '.join(f'{method} {n}' for method, n in sorted(measured['calls'].items()))}) |",
        f"| mined to confirmed in ClickHouse ({args.block_seconds} s blocks, 3 confirmations, a round every "
        f"{args.poll_seconds:g} s), {len(delays)} transactions | p50 **{statistics.median(delays):.1f} s**, "
        f"p95 {percentile(delays, 0.95):.1f} s, slowest {max(delays):.1f} s |",
        "",
        "The delay is the confirmations' own time (2 blocks after the transaction's) plus up to a poll and a "
        "round; in production that is (CHAIN_CONFIRMATIONS - 1) x the block time + up to CHAIN_POLL_SECONDS, "
        "and the rollups behind /analytics add up to ROLLUP_EVERY_SECONDS.",
        "",
        reference,
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("On-chain verification", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
