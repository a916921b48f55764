"""Actor `entities_shard`: end users, identities, wallets, sessions, payment sessions and the reported
transactions to verify on chain (chain/feed.py) in Postgres,
from the events the persist pump stored in ClickHouse (it hands them on in the entities stream).

Each batch is applied in one transaction that also records the source entries (the events-stream
entry ids in the "r" field) in `persisted_entries`; an entry recorded before is skipped, so a
redelivery or a repeated hand-over changes nothing twice. Upserts are one INSERT ... ON CONFLICT per
table a batch, aggregated first. A table's rows travel as one JSON array (msgspec, in C), which
Postgres unpacks with jsonb_array_elements: psycopg2 quoting each value of each row (execute_values)
took 25 us a row, most of this pump's CPU under load; the JSON costs about 1. jsonb, not json: a
json value is text, which every `->>` parses again, and that made an upsert cost Postgres about 30 us
a row where jsonb's is 18 (docs/performance-notes.md). Reading, retries and quarantine: see
workers/pump.py.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import redis

from adtivity.jobs import ENTITIES_SHARD
from adtivity.logs import log_event
from adtivity.metrics import REPEATED_HAND_OVERS
from adtivity.settings import Settings
from chain.feed import UPSERT_CHAIN_TRANSACTIONS, chain_transaction_rows
from models import events as ev
from models import redis_keys
from models.db import database
from models.events import SlimEvent
from models.jsonrows import rows_json
from models.redis_streams import ENTITIES_GROUP, entities_stream_key
from models.tracking import PersistedEntry
from workers.actor import actor
from workers.pump import Entry, StreamPump, run_pump
from workers.runtime import current

log = logging.getLogger(__name__)
UPSERT_END_USERS = """
INSERT INTO end_users (company_id, user_id, first_seen, last_seen, traits)
SELECT (r->>0)::uuid, r->>1, (r->>2)::timestamp, (r->>3)::timestamp, r->4 FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, user_id) DO UPDATE SET
    first_seen = LEAST(end_users.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(end_users.last_seen, EXCLUDED.last_seen),
    traits = end_users.traits || EXCLUDED.traits
"""
UPSERT_IDENTITIES = """
INSERT INTO identities (company_id, kind, value, user_id, first_seen, last_seen)
SELECT (r->>0)::uuid, r->>1, r->>2, r->>3, (r->>4)::timestamp, (r->>5)::timestamp FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, kind, value) DO UPDATE SET
    user_id = CASE WHEN EXCLUDED.last_seen >= identities.last_seen THEN EXCLUDED.user_id ELSE identities.user_id END,
    first_seen = LEAST(identities.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(identities.last_seen, EXCLUDED.last_seen)
"""
UPSERT_WALLETS = """
INSERT INTO wallets (company_id, address, chains, user_id, first_seen, last_seen)
SELECT (r->>0)::uuid, r->>1, ARRAY(SELECT jsonb_array_elements_text(r->2)), r->>3, (r->>4)::timestamp, (r->>5)::timestamp
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, address) DO UPDATE SET
    chains = ARRAY(SELECT DISTINCT c FROM unnest(wallets.chains || EXCLUDED.chains) AS c ORDER BY c),
    user_id = CASE WHEN EXCLUDED.user_id <> '' THEN EXCLUDED.user_id ELSE wallets.user_id END,
    first_seen = LEAST(wallets.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(wallets.last_seen, EXCLUDED.last_seen)
"""
UPSERT_SESSIONS = """
INSERT INTO sessions (company_id, session_id, identity, started_at, ended_at, events, page_views, entry_page, exit_page)
SELECT (r->>0)::uuid, r->>1, r->>2, (r->>3)::timestamp, (r->>4)::timestamp, (r->>5)::int, (r->>6)::int, r->>7, r->>8
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, session_id) DO UPDATE SET
    events = sessions.events + EXCLUDED.events,
    page_views = sessions.page_views + EXCLUDED.page_views,
    entry_page = CASE WHEN sessions.entry_page = '' OR (EXCLUDED.entry_page <> '' AND EXCLUDED.started_at < sessions.started_at)
                      THEN EXCLUDED.entry_page ELSE sessions.entry_page END,
    exit_page = CASE WHEN EXCLUDED.exit_page <> '' AND EXCLUDED.ended_at >= sessions.ended_at
                     THEN EXCLUDED.exit_page ELSE sessions.exit_page END,
    started_at = LEAST(sessions.started_at, EXCLUDED.started_at),
    ended_at = GREATEST(sessions.ended_at, EXCLUDED.ended_at)
"""
UPSERT_PAYMENTS = """
INSERT INTO payment_sessions (company_id, payment_id, status, amount, currency, method, user_id, history, first_seen, last_seen)
SELECT (r->>0)::uuid, r->>1, r->>2, (r->>3)::numeric, r->>4, r->>5, r->>6, r->7, (r->>8)::timestamp, (r->>9)::timestamp
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (company_id, payment_id) DO UPDATE SET
    status = CASE WHEN EXCLUDED.last_seen >= payment_sessions.last_seen THEN EXCLUDED.status ELSE payment_sessions.status END,
    history = payment_sessions.history || EXCLUDED.history,
    amount = COALESCE(EXCLUDED.amount, payment_sessions.amount),
    currency = COALESCE(NULLIF(EXCLUDED.currency, ''), payment_sessions.currency),
    method = COALESCE(NULLIF(EXCLUDED.method, ''), payment_sessions.method),
    user_id = COALESCE(NULLIF(EXCLUDED.user_id, ''), payment_sessions.user_id),
    first_seen = LEAST(payment_sessions.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(payment_sessions.last_seen, EXCLUDED.last_seen)
"""


def apply_entities(events: list[SlimEvent]) -> None:
    """Call inside a transaction (database.atomic())."""
    events = sorted(events, key=lambda e: e.event_time)
    cursor = database.cursor()
    for statement, rows in (
        (UPSERT_END_USERS, end_user_rows(events)),
        (UPSERT_IDENTITIES, identity_rows(events)),
        (UPSERT_WALLETS, wallet_rows(events)),
        (UPSERT_SESSIONS, session_rows(events)),
        (UPSERT_PAYMENTS, payment_rows(events)),
        (UPSERT_CHAIN_TRANSACTIONS, chain_transaction_rows(events)),
    ):
        if rows:
            cursor.execute(statement, (rows_json(rows),))


def end_user_rows(events: list[SlimEvent]) -> list[list]:
    users: dict[tuple, list] = {}
    for event in events:
        if not event.user_id:
            continue
        moment = event.event_time
        row = users.get((event.company_id, event.user_id))
        if row is None:
            row = users[(event.company_id, event.user_id)] = [event.company_id, event.user_id, moment, moment, {}]
        row[3] = moment
        if event.type == ev.IDENTIFY:
            row[4].update(event.traits)
    return list(users.values())


def identity_rows(events: list[SlimEvent]) -> list[list]:
    links: dict[tuple, list] = {}

    def link(event: SlimEvent, kind: str, value: str) -> None:
        moment = event.event_time
        row = links.get((event.company_id, kind, value))
        if row is None:
            links[(event.company_id, kind, value)] = [event.company_id, kind, value, event.user_id, moment, moment]
        else:
            row[3], row[5] = event.user_id, moment

    for event in events:
        if not event.user_id:
            continue
        if event.anonymous_id:
            link(event, "anonymous", event.anonymous_id)
        if event.type == ev.ALIAS and event.previous_id:
            link(event, "alias", event.previous_id)
        if event.wallet_address:
            link(event, "wallet", event.wallet_address)
    return list(links.values())


def wallet_rows(events: list[SlimEvent]) -> list[list]:
    wallets: dict[tuple, list] = {}
    for event in events:
        if not event.wallet_address:
            continue
        moment = event.event_time
        row = wallets.get((event.company_id, event.wallet_address))
        if row is None:
            row = wallets[(event.company_id, event.wallet_address)] = [
                event.company_id,
                event.wallet_address,
                set(),
                "",
                moment,
                moment,
            ]
        row[5] = moment
        row[3] = event.user_id or row[3]
        if event.chain_id:
            row[2].add(event.chain_id)
    return [[c, a, sorted(chains), u, first, last] for c, a, chains, u, first, last in wallets.values()]


def session_rows(events: list[SlimEvent]) -> list[list]:
    sessions: dict[tuple, list] = {}
    for event in events:
        if not event.session_id:
            continue
        moment = event.event_time
        row = sessions.get((event.company_id, event.session_id))
        if row is None:
            row = sessions[(event.company_id, event.session_id)] = [
                event.company_id,
                event.session_id,
                event.identity,
                moment,
                moment,
                0,
                0,
                "",
                "",
            ]
        row[4] = moment
        row[5] += 1
        if event.type == ev.PAGE:
            row[6] += 1
            row[7] = row[7] or event.page_path
            row[8] = event.page_path
    return list(sessions.values())


def payment_rows(events: list[SlimEvent]) -> list[list]:
    payments: dict[tuple, list] = {}
    for event in events:
        if event.type != ev.PAYMENT:
            continue
        moment = event.event_time
        row = payments.get((event.company_id, event.payment_id))
        if row is None:
            row = payments[(event.company_id, event.payment_id)] = [
                event.company_id,
                event.payment_id,
                "",
                None,
                "",
                "",
                "",
                [],
                moment,
                moment,
            ]
        row[2], row[9] = event.status, moment
        row[3] = Decimal(event.amount) if event.amount else row[3]
        row[4] = event.currency or row[4]
        row[5] = event.payment_method or row[5]
        row[6] = event.user_id or row[6]
        row[7].append({"status": event.status, "at": event.event_time.isoformat()})
    return list(payments.values())


class EntitiesPump(StreamPump):
    kind = "entities"
    event_type = SlimEvent

    def __init__(self, settings: Settings, client: redis.Redis, shard: int) -> None:
        super().__init__(settings, client, entities_stream_key(shard), ENTITIES_GROUP, shard)

    def store(self, entries: list[Entry]) -> None:
        by_source = {}
        for entry in entries:
            by_source.setdefault(entry.source, entry)  # a hand-over repeated within the batch counts once
        with database.atomic():
            rows = [{"stream": self.stream, "entry_id": source} for source in by_source]
            fresh = {
                row.entry_id
                for row in PersistedEntry.insert_many(rows)
                .on_conflict_ignore()
                .returning(PersistedEntry.entry_id)
                .execute()
            }
            apply_entities([event for source, entry in by_source.items() if source in fresh for event in entry.events])
        repeated = [source for source, entry in by_source.items() if source not in fresh and not entry.redelivered]
        if repeated:  # not a redelivery of ours: the persist pump handed the entry over twice
            REPEATED_HAND_OVERS.inc(len(repeated))
            log_event(
                log,
                "events-stream entry handed over more than once; real-time counts may be too high",
                level=logging.ERROR,
                shard=self.shard,
                entries=repeated[:10],
            )


@actor(ENTITIES_SHARD, max_retries=0, time_limit=10 * 60_000)
def entities_shard(shard: int) -> None:
    runtime = current()
    client = runtime.redis(30)
    if run_pump(
        runtime.settings,
        client,
        EntitiesPump(runtime.settings, client, shard),
        redis_keys.pump_lease("entities", shard),
        redis_keys.pump_queued("entities", shard),
    ):
        runtime.enqueue(ENTITIES_SHARD, shard)
