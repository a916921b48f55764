"""Benchmark of on-chain verification (chain/verify.py) against a local anvil chain (bin/localchain).

    .venv/bin/python bench/onchain.py [--transactions 2000] [--per-block 200] [--confirmations 12]
        [--paced-transactions 200] [--delay-transactions 20] [--block-seconds 2] [--poll-seconds 1]

Throughput: --transactions plain transfers are sent with automine off and mined --per-block to a
block; their reports enter `chain_transactions` as the entities pump writes them (chain/feed.py's
upsert); verification rounds (each hash looked up at once: CHAIN_BLOCK_SECONDS 0) then run back to back, with --confirmations blocks mined after the
first, until every hash is final. Prints hashes verified per second (by the round that first looks them
all up: receipts, blocks, Postgres writes and the ClickHouse export) and JSON-RPC calls per
transaction over its whole life.
Production pace: on a simulated clock (block timestamps set 12 s apart, a round every 15 s),
--paced-transactions transfers sent at random moments and reported at once, until every one is final:
calls a transaction (the target: about 1.2) and the delay from its block to final.
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
import random
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


def production_pace(settings, chain: LocalChain, count: int, block_seconds: int, poll_seconds: int) -> dict:
    """On a simulated clock: a block every `block_seconds` (timestamps set so), `count` transfers sent
    at random moments and reported at once (as the SDK does at broadcast), a round every
    `poll_seconds`, until every one is final; JSON-RPC calls a transaction, and mined-to-final delays."""
    company_id = bench_company(settings)[0]
    chain.rpc("evm_setIntervalMining", [0])
    chain.automine(False)
    rng = random.Random(7)
    paced = dataclasses.replace(settings, chain_poll_seconds=poll_seconds, chain_default_block_seconds=block_seconds)
    rpc = ChainRpc(CHAIN_ID, (chain.url,), timeout=30, batch_size=settings.chain_batch_size)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    start = utcnow()
    chain_start = int(chain.block("latest")["timestamp"], 16) + 1
    sends = sorted(rng.uniform(0, count * block_seconds) for _ in range(count))
    sent: list[str] = []
    second = 0
    while len(sent) < count or unfinished(company_id):
        now = start + dt.timedelta(seconds=second)
        while sends and sends[0] <= second:
            sends.pop(0)
            sent.append(chain.send(chain.accounts[len(sent) % 10], chain.accounts[9], 10**12 + len(sent)).lower())
            report(company_id, sent[-1:], now)
        if second and second % block_seconds == 0:
            chain.rpc("evm_setNextBlockTimestamp", [chain_start + second])
            chain.rpc("evm_mine", [])
        if second % poll_seconds == 0:
            verify_chain(paced, rpc, clickhouse, now=now)
        second += 1
        if second > (count + 10 * settings.confirmations(CHAIN_ID)) * block_seconds:
            raise RuntimeError("transactions never became final")
    with database.connection_context():
        finals = list(ChainTransaction.select().where(ChainTransaction.company_id == company_id))
    delays = [
        (row.checked_at - start).total_seconds() - (int(chain.block(row.block_number)["timestamp"], 16) - chain_start)
        for row in finals
    ]
    return {"calls": sum(rpc.calls.values()) / count, "by_method": dict(rpc.calls), "delays": delays}


def delay(
    settings, chain: LocalChain, count: int, block_seconds: int, poll_seconds: float
) -> tuple[list[float], float]:
    company_id = bench_company(settings)[0]
    fast = dataclasses.replace(
        settings,
        chain_confirmations=(f"{CHAIN_ID}=3",),
        chain_default_block_seconds=block_seconds,
        chain_poll_seconds=max(1, round(poll_seconds)),
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
            delays.append(exported - int(chain.block(row.block_number)["timestamp"], 16))
        time.sleep(poll_seconds)
    return delays, sum(rpc.calls.values()) / count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--per-block", type=int, default=200)
    parser.add_argument("--confirmations", type=int, default=12)
    parser.add_argument("--paced-transactions", type=int, default=200)
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
        measured = throughput(
            dataclasses.replace(settings, chain_default_block_seconds=0), chain, args.transactions, args.per_block
        )
        delays, delay_calls = delay(settings, chain, args.delay_transactions, args.block_seconds, args.poll_seconds)
        paced = production_pace(settings, chain, args.paced_transactions, 12, 15)
    finally:
        chain.stop()
    reference = cpu_reference()
    lines = [
        "`.venv/bin/python bench/onchain.py "
        f"--transactions {args.transactions} --per-block {args.per_block} --confirmations {args.confirmations} "
        f"--paced-transactions {args.paced_transactions} "
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
        f"| at Ethereum's pace (simulated clock: a block every 12 s, {args.confirmations} confirmations, a round "
        f"every 15 s, {args.paced_transactions} transactions each reported when sent) | "
        f"**{paced['calls']:.2f}** calls a transaction "
        f"({', '.join(f'{method} {n}' for method, n in sorted(paced['by_method'].items()))}); mined to final "
        f"p50 {statistics.median(paced['delays']):.0f} s, p95 {percentile(paced['delays'], 0.95):.0f} s |",
        f"| mined to confirmed in ClickHouse ({args.block_seconds} s blocks, 3 confirmations, a round every "
        f"{args.poll_seconds:g} s), {len(delays)} transactions | p50 **{statistics.median(delays):.1f} s**, "
        f"p95 {percentile(delays, 0.95):.1f} s, slowest {max(delays):.1f} s; {delay_calls:.2f} calls a "
        "transaction (each reported when sent, one to a block) |",
        "",
        "A hash is first looked up CHAIN_CONFIRMATIONS x CHAIN_BLOCK_SECONDS after its report, when it should be "
        "final, so mined to final is about (CHAIN_CONFIRMATIONS - 1) x the block time, plus up to CHAIN_POLL_SECONDS "
        "and a round; the rollups behind /analytics add up to ROLLUP_EVERY_SECONDS. With one transaction to a "
        "block, each costs its receipt and its block (for value and nonce) plus a share of the rounds' head "
        "look-ups; with k to a block, 1 + 1/k.",
        "",
        reference,
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("On-chain verification", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
