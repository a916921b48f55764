"""Entities from events: end users, identities, wallets, sessions and payment sessions, upserted into
Postgres once per batch (one INSERT ... ON CONFLICT per table, the batch aggregated first, the rows
sent with psycopg2's execute_values: building big statements through the ORM costs more than the
database's own work).

The caller runs `apply_entities` in the same transaction that records the batch's stream entries as
persisted, and passes only events not stored before, so a redelivered batch changes nothing twice.
"""
from __future__ import annotations

import json
from decimal import Decimal

from psycopg2.extras import execute_values

from models import events as ev
from models.db import database
from models.events import Event

UPSERT_END_USERS = """
INSERT INTO end_users (company_id, user_id, first_seen, last_seen, traits) VALUES %s
ON CONFLICT (company_id, user_id) DO UPDATE SET
    first_seen = LEAST(end_users.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(end_users.last_seen, EXCLUDED.last_seen),
    traits = end_users.traits || EXCLUDED.traits
"""
UPSERT_IDENTITIES = """
INSERT INTO identities (company_id, kind, value, user_id, first_seen, last_seen) VALUES %s
ON CONFLICT (company_id, kind, value) DO UPDATE SET
    user_id = CASE WHEN EXCLUDED.last_seen >= identities.last_seen THEN EXCLUDED.user_id ELSE identities.user_id END,
    first_seen = LEAST(identities.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(identities.last_seen, EXCLUDED.last_seen)
"""
UPSERT_WALLETS = """
INSERT INTO wallets (company_id, address, chains, user_id, first_seen, last_seen) VALUES %s
ON CONFLICT (company_id, address) DO UPDATE SET
    chains = ARRAY(SELECT DISTINCT c FROM unnest(wallets.chains || EXCLUDED.chains) AS c ORDER BY c),
    user_id = CASE WHEN EXCLUDED.user_id <> '' THEN EXCLUDED.user_id ELSE wallets.user_id END,
    first_seen = LEAST(wallets.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(wallets.last_seen, EXCLUDED.last_seen)
"""
UPSERT_SESSIONS = """
INSERT INTO sessions (company_id, session_id, identity, started_at, ended_at, events, page_views, entry_page, exit_page)
VALUES %s
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
VALUES %s
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


def naive(moment):
    return moment.replace(tzinfo=None)


def apply_entities(events: list[Event]) -> None:
    """Call inside a transaction (database.atomic())."""
    events = sorted(events, key=lambda e: e.event_time)
    cursor = database.cursor()
    for statement, rows in (
        (UPSERT_END_USERS, end_user_rows(events)),
        (UPSERT_IDENTITIES, identity_rows(events)),
        (UPSERT_WALLETS, wallet_rows(events)),
        (UPSERT_SESSIONS, session_rows(events)),
        (UPSERT_PAYMENTS, payment_rows(events)),
    ):
        if rows:
            execute_values(cursor, statement, rows, page_size=len(rows))


def end_user_rows(events: list[Event]) -> list[tuple]:
    users: dict[tuple, list] = {}
    for event in events:
        if not event.user_id:
            continue
        moment = naive(event.event_time)
        row = users.get((event.company_id, event.user_id))
        if row is None:
            row = users[(event.company_id, event.user_id)] = [event.company_id, event.user_id, moment, moment, {}]
        row[3] = moment
        if event.type == ev.IDENTIFY:
            row[4].update(event.traits)
    return [(c, u, first, last, json.dumps(traits)) for c, u, first, last, traits in users.values()]


def identity_rows(events: list[Event]) -> list[tuple]:
    links: dict[tuple, list] = {}

    def link(event: Event, kind: str, value: str) -> None:
        moment = naive(event.event_time)
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
    return [tuple(row) for row in links.values()]


def wallet_rows(events: list[Event]) -> list[tuple]:
    wallets: dict[tuple, list] = {}
    for event in events:
        if not event.wallet_address:
            continue
        moment = naive(event.event_time)
        row = wallets.get((event.company_id, event.wallet_address))
        if row is None:
            row = wallets[(event.company_id, event.wallet_address)] = [event.company_id, event.wallet_address, set(), "", moment, moment]
        row[5] = moment
        row[3] = event.user_id or row[3]
        if event.chain_id:
            row[2].add(event.chain_id)
    return [(c, a, sorted(chains), u, first, last) for c, a, chains, u, first, last in wallets.values()]


def session_rows(events: list[Event]) -> list[tuple]:
    sessions: dict[tuple, list] = {}
    for event in events:
        if not event.session_id:
            continue
        moment = naive(event.event_time)
        row = sessions.get((event.company_id, event.session_id))
        if row is None:
            row = sessions[(event.company_id, event.session_id)] = [
                event.company_id, event.session_id, event.identity, moment, moment, 0, 0, "", ""]
        row[4] = moment
        row[5] += 1
        if event.type == ev.PAGE:
            row[6] += 1
            row[7] = row[7] or event.page_path
            row[8] = event.page_path
    return [tuple(row) for row in sessions.values()]


def payment_rows(events: list[Event]) -> list[tuple]:
    payments: dict[tuple, list] = {}
    for event in events:
        if event.type != ev.PAYMENT:
            continue
        moment = naive(event.event_time)
        row = payments.get((event.company_id, event.payment_id))
        if row is None:
            row = payments[(event.company_id, event.payment_id)] = [
                event.company_id, event.payment_id, "", None, "", "", "", [], moment, moment]
        row[2], row[9] = event.status, moment
        row[3] = Decimal(event.amount) if event.amount else row[3]
        row[4] = event.currency or row[4]
        row[5] = event.payment_method or row[5]
        row[6] = event.user_id or row[6]
        row[7].append({"status": event.status, "at": event.event_time.isoformat()})
    return [(*row[:7], json.dumps(row[7]), row[8], row[9]) for row in payments.values()]
