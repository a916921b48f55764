"""`/v1/companies/{id}/transactions`: the transactions the company's clients reported, each with what
the chain says of it (docs/web3.md), oldest report first, a cursor page at a time. Filters: `state`,
`chain`, `disagrees=true` (only those the chain contradicts: the list to review for fraud and bugs).
Members of any role or a read key may read."""

from __future__ import annotations

import falcon

from adtivity.settings import Settings
from models.chain import STATES, ChainTransaction, disagreeing
from web.pagination import paginate
from web.principals import company_id_access
from web.resources.analytics import bad


def transaction_out(row: ChainTransaction) -> dict:
    return {
        "chain_id": row.chain_id,
        "tx_hash": row.tx_hash,
        "state": row.state,
        "final": row.final,
        "disagrees": row.contradicted,
        "reported": {
            "status": row.reported_status,
            "from": row.reported_from,
            "to": row.reported_to,
            "value": row.reported_value,
            "first_at": row.reported_at,
            "last_at": row.last_reported_at,
        },
        "chain": {
            "block_number": row.block_number,
            "block_hash": row.block_hash,
            "confirmations": row.confirmations,
            "succeeded": row.succeeded,
            "from": row.tx_from,
            "to": row.tx_to,
            "value_wei": None if row.value is None else str(row.value),
            "gas_used": row.gas_used,
            "transfers": row.transfers,
            "checked_at": row.checked_at,
        },
    }


class Transactions:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        query = ChainTransaction.select().where(ChainTransaction.company_id == company)
        state = req.get_param("state")
        if state:
            if state not in STATES:
                raise bad("state", f"state must be one of {', '.join(STATES)}")
            query = query.where(ChainTransaction.state == state)
        chain = req.get_param("chain")
        if chain:
            query = query.where(ChainTransaction.chain_id == chain)
        if req.get_param_as_bool("disagrees", default=False):
            query = query.where(disagreeing())
        rows, cursor = paginate(
            req,
            self.settings,
            query,
            ChainTransaction.reported_at,
            ChainTransaction.tx_hash,
            key=lambda row: (row.reported_at, row.tx_hash),
            tie_breaker_type=str,
        )
        resp.media = {"items": [transaction_out(row) for row in rows], "next_cursor": cursor}
