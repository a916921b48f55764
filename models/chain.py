"""The Postgres models of on-chain verification (models/migrations/postgres/0006_chain_transactions.sql):
a reported transaction and what the chain says of it, and the ERC-20 tokens met in transfers. What the
states mean and how they are decided live in chain/verify.py."""

from __future__ import annotations

import operator
from functools import reduce

import peewee
from playhouse.postgres_ext import BinaryJSONField

from models.db import BaseModel

PENDING, CONFIRMED, REVERTED, REPLACED, NOT_FOUND, MISMATCH = (
    "pending",
    "confirmed",
    "reverted",
    "replaced",
    "not_found",
    "mismatch",
)
STATES = (PENDING, CONFIRMED, REVERTED, REPLACED, NOT_FOUND, MISMATCH)
# What analytics call a transaction no verifier has looked at (its chain has no RPC endpoint, or no
# round has reached it yet).
UNVERIFIED = "unverified"


# (what the chain says, what the client said or "" for anything): where the chain contradicts the client
# (a fraud and bug signal) once its answer is final.
CONTRADICTIONS = (
    (MISMATCH, ""),
    (NOT_FOUND, ""),
    (REVERTED, "confirmed"),
    (REPLACED, "confirmed"),
    (CONFIRMED, "failed"),
)


def disagrees(state: str, reported_status: str) -> bool:
    return any(state == said and (not client or reported_status == client) for said, client in CONTRADICTIONS)


def hashes_in_state(state: str) -> str:
    """ClickHouse SQL: the company's (chain id, hash) pairs whose newest verified state is `state` (a
    literal or a bound parameter), for `(chain_id, lower(tx_hash)) GLOBAL IN ...` over `events` (GLOBAL:
    on a cluster the verifications are sharded by hash, not like the events)."""
    return (
        "(SELECT chain_id, tx_hash FROM tx_verifications WHERE company_id = toUUID(%(company)s) "
        f"GROUP BY chain_id, tx_hash HAVING argMax(state, version) = {state})"
    )


def verified_state() -> str:
    """ClickHouse SQL over `events`: what the chain says of a transaction event ("unverified" where no
    verifier has answered), "" for other events."""
    tests = ", ".join(
        f"(chain_id, lower(tx_hash)) GLOBAL IN {hashes_in_state(repr(state))}, {state!r}" for state in STATES
    )
    return f"if(type = 'transaction', multiIf({tests}, {UNVERIFIED!r}), '')"


class ChainTransaction(BaseModel):
    company_id = peewee.UUIDField()
    chain_id = peewee.TextField()
    tx_hash = peewee.TextField()
    reported_at = peewee.DateTimeField()
    last_reported_at = peewee.DateTimeField()
    reported_status = peewee.TextField(default="")
    reported_from = peewee.TextField(default="")
    reported_to = peewee.TextField(default="")
    reported_value = peewee.TextField(default="")
    state = peewee.TextField(default=PENDING)
    final = peewee.BooleanField(default=False)
    block_number = peewee.BigIntegerField(null=True)
    block_hash = peewee.TextField(null=True)
    tx_from = peewee.TextField(default="")
    tx_to = peewee.TextField(default="")
    value = peewee.DecimalField(max_digits=78, decimal_places=0, null=True, auto_round=False)
    nonce = peewee.BigIntegerField(null=True)
    gas_used = peewee.BigIntegerField(null=True)
    succeeded = peewee.BooleanField(null=True)
    transfers = BinaryJSONField(default=list)
    confirmations = peewee.IntegerField(default=0)
    lookups = peewee.IntegerField(default=0)
    reorgs = peewee.IntegerField(default=0)
    next_check_at = peewee.DateTimeField()
    checked_at = peewee.DateTimeField(null=True)
    version = peewee.BigIntegerField(default=1)
    exported_version = peewee.BigIntegerField(default=0)

    @property
    def contradicted(self) -> bool:
        """The chain's final answer contradicts what the client reported (CONTRADICTIONS)."""
        return bool(self.final) and disagrees(self.state, self.reported_status)

    class Meta:
        table_name = "chain_transactions"
        primary_key = peewee.CompositeKey("company_id", "chain_id", "tx_hash")


class ChainToken(BaseModel):
    chain_id = peewee.TextField()
    address = peewee.TextField()
    decimals = peewee.IntegerField()
    symbol = peewee.TextField(default="")

    class Meta:
        table_name = "chain_tokens"
        primary_key = peewee.CompositeKey("chain_id", "address")


def disagreeing() -> peewee.Expression:
    """The final chain_transactions rows the chain contradicts (CONTRADICTIONS)."""
    cases = [
        (ChainTransaction.state == said) & ((ChainTransaction.reported_status == client) if client else True)
        for said, client in CONTRADICTIONS
    ]
    return ChainTransaction.final & reduce(operator.or_, cases)


CHAIN_MODELS = (ChainTransaction, ChainToken)
