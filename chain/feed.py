"""The transactions companies report, handed to verification: the entities pump upserts one
`chain_transactions` row per company, chain and hash from each batch of stored events (bots are left
out, as in every metric). A new row is first looked up when it should be final (chain/verify.py); a
repeated report updates what the client said (its latest status, and from, to and value where given) and leaves the chain's answer."""

from __future__ import annotations

from models import events as ev
from models.events import SlimEvent

UPSERT_CHAIN_TRANSACTIONS = """
INSERT INTO chain_transactions (company_id, chain_id, tx_hash, reported_at, last_reported_at, reported_status,
    reported_from, reported_to, reported_value, next_check_at)
SELECT (r->>0)::uuid, r->>1, r->>2, (r->>3)::timestamp, (r->>4)::timestamp, r->>5, r->>6, r->>7, r->>8, (r->>3)::timestamp
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, chain_id, tx_hash) DO UPDATE SET
    reported_at = LEAST(chain_transactions.reported_at, EXCLUDED.reported_at),
    last_reported_at = GREATEST(chain_transactions.last_reported_at, EXCLUDED.last_reported_at),
    reported_status = CASE WHEN EXCLUDED.last_reported_at >= chain_transactions.last_reported_at
                           THEN EXCLUDED.reported_status ELSE chain_transactions.reported_status END,
    reported_from = COALESCE(NULLIF(EXCLUDED.reported_from, ''), chain_transactions.reported_from),
    reported_to = COALESCE(NULLIF(EXCLUDED.reported_to, ''), chain_transactions.reported_to),
    reported_value = COALESCE(NULLIF(EXCLUDED.reported_value, ''), chain_transactions.reported_value),
    version = chain_transactions.version + 1
"""


def chain_transaction_rows(events: list[SlimEvent]) -> list[list[object]]:
    """One row per (company, chain, hash) of the batch's reported transactions; `events` in time order."""
    reported: dict[tuple[str, str, str], list[object]] = {}
    for event in events:
        if event.type != ev.TRANSACTION or not event.tx_hash or not event.chain_id or event.is_bot:
            continue
        moment = event.event_time
        key = (event.company_id, event.chain_id, event.tx_hash.lower())
        row = reported.get(key)
        if row is None:
            row = reported[key] = [*key, moment, moment, "", "", "", ""]
        row[4], row[5] = moment, event.status
        row[6] = event.tx_from.lower() or row[6]
        row[7] = event.tx_to.lower() or row[7]
        row[8] = event.tx_value or row[8]
    return list(reported.values())
