"""One verification round of one chain: the due `chain_transactions` rows looked up in at most two
batched JSON-RPC round trips, their new states written to Postgres, and every new version exported to
ClickHouse (`tx_verifications`).

States (models/chain.py):
- pending: not mined yet, or mined with fewer than the chain's confirmations (CHAIN_CONFIRMATIONS);
- confirmed: mined, succeeded, final, and what the client reported (from, to, value) is what the chain has;
- reverted: mined and final, but the transaction failed;
- mismatch: mined and final, but the chain's from, to or value differ from what the client reported
  (a value agrees when given in wei or whole coins, or as the amount of one of its ERC-20 transfers);
- replaced: never mined, and its sender's nonce was used by another transaction;
- not_found: the chain never saw it within CHAIN_UNSEEN_TIMEOUT_SECONDS of the first report.
Final rows are not looked up again. A mined row whose block is no longer canonical (a reorg) goes
back to pending and is looked up again at once.

A reported hash is first looked up when it should be final: CHAIN_CONFIRMATIONS x CHAIN_BLOCK_SECONDS
after its first report (until then it is pending). The cost per transaction: one receipt look-up when
it is mined by its first look-up; its block (with
the transactions, for value and nonce) is shared by every due transaction of that block, and the
head block by the whole round. A mined row is looked up again when its confirmations should be there
(at the pace of the blocks between its own and the head), and its block's header is then shared as
well. A hash not mined yet is looked up again after CHAIN_POLL_SECONDS x 2^lookups (at most
CHAIN_MAX_BACKOFF_SECONDS); from its second miss on with its pool entry (for its sender and nonce)
until that is known, then with its sender's nonce and its receipt once more.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from adtivity.logs import log_event
from adtivity.metrics import CHAIN_VERIFIED
from adtivity.settings import Settings
from chain import decode
from chain.rpc import CallFailed, ChainRpc, ChainUnavailable
from models.chain import (
    CONFIRMED,
    MISMATCH,
    NOT_FOUND,
    PENDING,
    REPLACED,
    REVERTED,
    ChainToken,
    ChainTransaction,
)
from models.clickhouse_cluster import Layout
from models.db import database
from models.events_table import unix_seconds
from models.jsonrows import rows_json

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()
# Due: not final, its time come, and (a hash never looked up, never mined nor reorged) reported at least
# the chain's time to finality ago.
DUE = """
SELECT * FROM (
    SELECT t.*, row_number() OVER (PARTITION BY company_id ORDER BY next_check_at) AS nth
    FROM chain_transactions t WHERE chain_id = %s AND NOT final AND next_check_at <= %s
        AND (block_hash IS NOT NULL OR lookups > 0 OR reorgs > 0 OR reported_at <= %s)
) AS due WHERE nth <= %s ORDER BY next_check_at LIMIT %s
"""
# The columns the verifier owns, as WRITE_VERIFICATIONS sets them from its JSON rows (after company,
# chain, hash and whether the version changes).
VERIFICATION_COLUMNS = (
    "state",
    "final",
    "block_number",
    "block_hash",
    "tx_from",
    "tx_to",
    "value",
    "nonce",
    "gas_used",
    "succeeded",
    "transfers",
    "confirmations",
    "lookups",
    "reorgs",
    "next_check_at",
)
WRITE_VERIFICATIONS = """
UPDATE chain_transactions AS t SET
    checked_at = %s, version = t.version + (r->>3)::int, state = r->>4, final = (r->>5)::boolean,
    block_number = (r->>6)::bigint, block_hash = r->>7, tx_from = r->>8, tx_to = r->>9, value = (r->>10)::numeric,
    nonce = (r->>11)::bigint, gas_used = (r->>12)::bigint, succeeded = (r->>13)::boolean, transfers = r->14,
    confirmations = (r->>15)::int, lookups = (r->>16)::int, reorgs = (r->>17)::int,
    next_check_at = (r->>18)::timestamp
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE t.company_id = (r->>0)::uuid AND t.chain_id = r->>1 AND t.tx_hash = r->>2
"""
MARK_EXPORTED = """
UPDATE chain_transactions AS t SET exported_version = GREATEST(t.exported_version, (r->>3)::bigint)
FROM jsonb_array_elements(%s::jsonb) AS r
WHERE t.company_id = (r->>0)::uuid AND t.chain_id = r->>1 AND t.tx_hash = r->>2
"""


@dataclass(frozen=True)
class SecondLook:
    blocks: dict[int, tuple[decode.Header, dict[str, decode.BlockTransaction]]]  # number -> the block, its transactions
    pool: dict[str, Any]  # hash -> the pool's answer of a first look
    nonces: dict[str, int]  # sender -> transactions it has mined
    unmined: set[str]  # hashes with a known nonce still without a receipt after the nonce was read
    tokens: dict[str, ChainToken]


@dataclass
class RoundResult:
    looked_up: int = 0
    finalized: dict[str, int] = field(default_factory=dict)
    reorged: int = 0
    exported: int = 0


@dataclass
class Round:
    settings: Settings
    rpc: ChainRpc
    now: dt.datetime  # naive UTC
    result: RoundResult = field(default_factory=RoundResult)

    @property
    def chain_id(self) -> str:
        return self.rpc.chain_id

    @property
    def time_to_finality(self) -> dt.timedelta:
        return dt.timedelta(
            seconds=self.settings.confirmations(self.chain_id) * self.settings.block_seconds(self.chain_id)
        )

    def run(self) -> RoundResult:
        with database.connection_context():
            rows = list(
                ChainTransaction.raw(
                    DUE,
                    self.chain_id,
                    self.now,
                    self.now - self.time_to_finality,
                    self.settings.chain_max_checks_per_company,
                    self.settings.chain_max_checks_per_round,
                )
            )
            if rows:
                self.verify(rows)
        return self.result

    def verify(self, rows: list[ChainTransaction]) -> None:
        unmined = [row for row in rows if row.block_hash is None]
        mined = [row for row in rows if row.block_hash is not None]
        mined_blocks = sorted({row.block_number or 0 for row in mined})
        answers = self.rpc.batch(
            [
                ("eth_getBlockByNumber", ["latest", False]),
                *(("eth_getTransactionReceipt", [row.tx_hash]) for row in unmined),
                *(("eth_getBlockByNumber", [hex(number), False]) for number in mined_blocks),
            ]
        )
        if not isinstance(answers[0], dict):
            raise ChainUnavailable(f"chain {self.chain_id} did not say its head block")
        head = decode.header(answers[0])
        receipt_answers = dict(zip((row.tx_hash for row in unmined), answers[1 : 1 + len(unmined)], strict=True))
        receipts = {
            tx_hash: decode.receipt(answer)
            for tx_hash, answer in receipt_answers.items()
            if isinstance(answer, dict) and answer.get("blockNumber")
        }
        looked_up_failed = {tx_hash for tx_hash, answer in receipt_answers.items() if isinstance(answer, CallFailed)}
        canonical = {
            number: decode.header(answer) if isinstance(answer, dict) else None
            for number, answer in zip(mined_blocks, answers[1 + len(unmined) :], strict=True)
        }
        unseen = [row for row in unmined if row.tx_hash not in receipts and row.tx_hash not in looked_up_failed]
        second = self.second_look(receipts, unseen)
        self.result.looked_up += len(rows)
        updates = [self.mined_update(row, head, canonical.get(row.block_number or 0)) for row in mined]
        for row in unmined:
            if row.tx_hash in receipts:
                update = self.newly_mined_update(row, head, receipts[row.tx_hash], second.blocks, second.tokens)
            elif row.tx_hash in looked_up_failed:
                update = {"next_check_at": self.now + dt.timedelta(seconds=self.settings.chain_poll_seconds)}
            else:
                update = self.unseen_update(row, second)
            updates.append(update)
        self.write(mined + unmined, updates)

    def second_look(self, receipts: dict[str, decode.Receipt], unseen: list[ChainTransaction]) -> SecondLook:
        """One more batch: the new receipts' blocks with their transactions, the pool entries of unseen
        hashes whose nonce is not known, their senders' nonces where it is (then their receipts again:
        one mined since the first batch must not pass for replaced), and new tokens' metadata."""
        block_numbers = sorted({receipt.block_number for receipt in receipts.values()})
        first_looks = [row for row in unseen if row.nonce is None and row.lookups >= 1]
        known_nonce = [row for row in unseen if row.nonce is not None and row.tx_from]
        senders = sorted({row.tx_from for row in known_nonce})
        token_addresses = sorted({transfer.token for receipt in receipts.values() for transfer in receipt.transfers})
        known = {
            token.address: token
            for token in ChainToken.select().where(
                ChainToken.chain_id == self.chain_id, ChainToken.address.in_(token_addresses)
            )
        }
        new_tokens = [address for address in token_addresses if address not in known]
        calls: list[tuple[str, list[Any]]] = [
            *(("eth_getBlockByNumber", [hex(number), True]) for number in block_numbers),
            *(("eth_getTransactionByHash", [row.tx_hash]) for row in first_looks),
            *(("eth_getTransactionCount", [sender, "latest"]) for sender in senders),
            *(("eth_getTransactionReceipt", [row.tx_hash]) for row in known_nonce),
            *(
                ("eth_call", [{"to": address, "data": data}, "latest"])
                for address in new_tokens
                for data in (decode.DECIMALS_CALL, decode.SYMBOL_CALL)
            ),
        ]
        answers = iter(self.rpc.batch(calls) if calls else [])
        blocks = {}
        for number in block_numbers:
            block = next(answers)
            if isinstance(block, dict):
                blocks[number] = (decode.header(block), decode.block_transactions(block))
        pool = {row.tx_hash: next(answers) for row in first_looks}
        nonces = {}
        for sender in senders:
            count = next(answers)
            if isinstance(count, str):
                nonces[sender] = decode.quantity(count) or 0
        unmined = {row.tx_hash for row in known_nonce if next(answers) is None}
        for address in new_tokens:
            decimals, symbol = next(answers), next(answers)
            known[address] = ChainToken(
                chain_id=self.chain_id,
                address=address,
                decimals=decode.token_decimals(decimals),
                symbol=decode.token_symbol(symbol),
            )
        if new_tokens:
            ChainToken.insert_many(
                [
                    {"chain_id": self.chain_id, "address": a, "decimals": known[a].decimals, "symbol": known[a].symbol}
                    for a in new_tokens
                ]
            ).on_conflict_ignore().execute()
        return SecondLook(blocks, pool, nonces, unmined, known)

    # What each row becomes.
    def mined_update(
        self, row: ChainTransaction, head: decode.Header, canonical: decode.Header | None
    ) -> dict[str, Any]:
        """A row mined at an earlier look-up: still in the canonical chain (count its confirmations),
        or reorged out (back to pending, looked up again at once)."""
        if canonical is None or canonical.hash != row.block_hash:
            self.result.reorged += 1
            log_event(log, "transaction's block left the chain", chain=self.chain_id, block=row.block_number)
            return {
                "state": PENDING,
                "block_number": None,
                "block_hash": None,
                "succeeded": None,
                "gas_used": None,
                "value": None,
                "transfers": [],
                "confirmations": 0,
                "lookups": 0,
                "reorgs": row.reorgs + 1,
                "next_check_at": self.now,
                "visible": True,
            }
        return self.confirmation_update(row, head, canonical, bool(row.succeeded), row.value, row.transfers)

    def newly_mined_update(
        self,
        row: ChainTransaction,
        head: decode.Header,
        receipt: decode.Receipt,
        blocks: dict[int, tuple[decode.Header, dict[str, decode.BlockTransaction]]],
        tokens: dict[str, ChainToken],
    ) -> dict[str, Any]:
        block, transactions = blocks.get(receipt.block_number, (None, {}))
        recorded = transactions.get(row.tx_hash)
        if block is None or block.hash != receipt.block_hash or recorded is None:  # a reorg between the look-ups
            return {"next_check_at": self.now}
        transfers = [  # second_look knows every token of the round's receipts
            {
                "token": transfer.token,
                "symbol": tokens[transfer.token].symbol,
                "from": transfer.sender,
                "to": transfer.recipient,
                "amount": str(transfer.amount),
                "decimals": tokens[transfer.token].decimals,
            }
            for transfer in receipt.transfers
        ]
        mined = {
            "block_number": receipt.block_number,
            "block_hash": receipt.block_hash,
            "succeeded": receipt.succeeded,
            "gas_used": receipt.gas_used,
            "tx_from": recorded.sender,
            "tx_to": recorded.recipient,
            "value": Decimal(recorded.value),
            "nonce": recorded.nonce,
            "transfers": transfers,
        }
        row.tx_from, row.tx_to = recorded.sender, recorded.recipient
        return mined | self.confirmation_update(row, head, block, receipt.succeeded, Decimal(recorded.value), transfers)

    def confirmation_update(
        self,
        row: ChainTransaction,
        head: decode.Header,
        block: decode.Header,
        succeeded: bool,
        value: Decimal | None,
        transfers: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Final once the chain's confirmations are there; until then looked up again when they should
        be, at the pace the chain has been making blocks (the block's hash is checked then: a reorg
        before it sends the row back to pending)."""
        confirmations = max(0, head.number - block.number + 1)
        required = self.settings.confirmations(self.chain_id)
        wait = float(self.settings.chain_poll_seconds)
        if head.number > block.number:
            seconds_a_block = (head.timestamp - block.timestamp) / (head.number - block.number)
            wait = min(max(wait, (required - confirmations) * seconds_a_block), self.settings.chain_max_backoff_seconds)
        update: dict[str, Any] = {
            "confirmations": confirmations,
            "next_check_at": self.now + dt.timedelta(seconds=wait),
            "visible": True,
        }
        if confirmations >= required:
            state = (
                MISMATCH if not self.agrees_with_report(row, value, transfers) else CONFIRMED if succeeded else REVERTED
            )
            update |= {"state": state, "final": True}
        return update

    def agrees_with_report(self, row: ChainTransaction, value: Decimal | None, transfers: list[dict[str, Any]]) -> bool:
        if row.reported_from and row.reported_from != row.tx_from:
            return False
        if row.reported_to and row.reported_to != row.tx_to:
            return False
        if not row.reported_value:
            return True
        if value is not None and decode.reported_value_agrees(row.reported_value, int(value), decode.NATIVE_DECIMALS):
            return True
        return any(
            decode.reported_value_agrees(row.reported_value, int(transfer["amount"]), int(transfer["decimals"]))
            for transfer in transfers
        )

    def unseen_update(self, row: ChainTransaction, second: SecondLook) -> dict[str, Any]:
        """Not mined: in the pool (note its sender and nonce), replaced (its nonce used by another),
        not found (past the timeout), or looked up again later."""
        update: dict[str, Any] = {"lookups": row.lookups + 1}
        pooled = second.pool.get(row.tx_hash)
        if isinstance(pooled, dict) and pooled.get("nonce") is not None:
            update |= {"nonce": decode.quantity(pooled["nonce"]), "tx_from": str(pooled.get("from", "")).lower()}
        elif row.nonce is not None and second.nonces.get(row.tx_from, -1) > row.nonce:
            if row.tx_hash not in second.unmined:  # mined meanwhile: the next round reads it
                return {"next_check_at": self.now}
            return update | {"state": REPLACED, "final": True, "visible": True}
        deadline = row.reported_at + dt.timedelta(seconds=self.settings.chain_unseen_timeout_seconds)
        if self.now >= deadline:
            return update | {"state": NOT_FOUND, "final": True, "visible": True}
        wait = min(self.settings.chain_poll_seconds * 2**row.lookups, self.settings.chain_max_backoff_seconds)
        return update | {"next_check_at": min(self.now + dt.timedelta(seconds=wait), deadline)}

    def write(self, rows: list[ChainTransaction], updates: list[dict[str, Any]]) -> None:
        """Every row's verification columns (the verifier alone writes them; the feed writes what the
        client said) in one statement; a row whose answer changed gets a new version to export."""
        written = []
        for row, update in zip(rows, updates, strict=True):
            visible = update.pop("visible", False)
            for name, value in update.items():
                setattr(row, name, value)
            written.append(
                [str(row.company_id), row.chain_id, row.tx_hash, int(visible)]
                + [getattr(row, name) for name in VERIFICATION_COLUMNS]
            )
            if update.get("final"):
                self.result.finalized[row.state] = self.result.finalized.get(row.state, 0) + 1
                CHAIN_VERIFIED.labels(self.chain_id, row.state).inc()
        with database.atomic():
            database.execute_sql(WRITE_VERIFICATIONS, (self.now, rows_json(written)))


def export_versions(settings: Settings, clickhouse: Client, chain_id: str, *, limit: int) -> int:
    """Inserts into ClickHouse each chain_transactions row of the chain whose newest version it lacks
    (at most `limit`), then records them exported; returns how many. A failed insert leaves them to
    the next round."""
    with database.connection_context():
        rows = list(
            ChainTransaction.select()
            .where(ChainTransaction.chain_id == chain_id, ChainTransaction.exported_version < ChainTransaction.version)
            .limit(limit)
        )
        if not rows:
            return 0
        clickhouse.raw_insert(
            "tx_verifications",
            insert_block=b"\n".join(_json.encode(export_row(row)) for row in rows) + b"\n",
            fmt="JSONEachRow",
            settings=Layout.from_settings(settings).insert_settings,
        )
        database.execute_sql(
            MARK_EXPORTED, (rows_json([[str(row.company_id), row.chain_id, row.tx_hash, row.version] for row in rows]),)
        )
    return len(rows)


def export_row(row: ChainTransaction) -> dict[str, Any]:
    transfers: list[dict[str, Any]] = row.transfers or []
    return {
        "company_id": str(row.company_id),
        "chain_id": row.chain_id,
        "tx_hash": row.tx_hash,
        "reported_at": unix_seconds(row.reported_at),
        "reported_status": row.reported_status,
        "reported_value_num": float(decode.decimal_or_none(row.reported_value) or 0),
        "state": row.state,
        "final": int(row.final),
        "disagrees": int(row.contradicted),
        "block_number": row.block_number or 0,
        "tx_from": row.tx_from,
        "tx_to": row.tx_to,
        "value_num": float(decode.whole_units(int(row.value), decode.NATIVE_DECIMALS))
        if row.value is not None
        else 0.0,
        "gas_used": row.gas_used or 0,
        "transfer_tokens": [transfer["token"] for transfer in transfers],
        "transfer_amounts": [
            float(decode.whole_units(int(transfer["amount"]), int(transfer["decimals"]))) for transfer in transfers
        ],
        "verified_at": unix_seconds(row.checked_at or row.reported_at),
        "version": row.version,
    }


def verify_chain(settings: Settings, rpc: ChainRpc, clickhouse: Client, *, now: dt.datetime) -> RoundResult:
    """A round of the chain: look-ups, then the export of what changed (also what a failed export left)."""
    result = Round(settings, rpc, now).run()
    try:
        result.exported = export_versions(settings, clickhouse, rpc.chain_id, limit=settings.chain_max_checks_per_round)
    except (ClickHouseError, OSError) as error:  # left unexported: the next round sends them
        log_event(log, "verifications not exported", level=logging.WARNING, chain=rpc.chain_id, error=str(error)[:200])
    return result
