"""Entities from events: end users, identities, wallets, sessions and payment sessions, upserted into
Postgres once per batch (one INSERT ... ON CONFLICT per table, the batch aggregated first).

The caller runs `apply_entities` in the same transaction that records the batch's stream entries as
persisted, and passes only events not stored before, so a redelivered batch changes nothing twice.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

from peewee import EXCLUDED, SQL, fn

from models import events as ev
from models.events import Event
from models.tracking import EndUser, Identity, PaymentSession, Session, Wallet


def naive(moment):
    return moment.replace(tzinfo=None)


def apply_entities(events: list[Event]) -> None:
    events = sorted(events, key=lambda e: e.event_time)
    upsert_end_users(events)
    upsert_identities(events)
    upsert_wallets(events)
    upsert_sessions(events)
    upsert_payments(events)


def upsert_end_users(events: list[Event]) -> None:
    users: dict[tuple, dict] = {}
    for event in events:
        if not event.user_id:
            continue
        row = users.setdefault((event.company_id, event.user_id), {
            "company_id": uuid.UUID(event.company_id), "user_id": event.user_id,
            "first_seen": naive(event.event_time), "traits": {}})
        row["last_seen"] = naive(event.event_time)
        if event.type == ev.IDENTIFY:
            row["traits"].update(event.traits)
    if users:
        EndUser.insert_many(list(users.values())).on_conflict(
            conflict_target=[EndUser.company_id, EndUser.user_id],
            update={
                EndUser.first_seen: fn.LEAST(EndUser.first_seen, EXCLUDED.first_seen),
                EndUser.last_seen: fn.GREATEST(EndUser.last_seen, EXCLUDED.last_seen),
                EndUser.traits: SQL("end_users.traits || EXCLUDED.traits"),
            },
        ).execute()


def upsert_identities(events: list[Event]) -> None:
    links: dict[tuple, dict] = {}

    def link(event: Event, kind: str, value: str) -> None:
        row = links.setdefault((event.company_id, kind, value), {
            "company_id": uuid.UUID(event.company_id), "kind": kind, "value": value,
            "first_seen": naive(event.event_time)})
        row.update(user_id=event.user_id, last_seen=naive(event.event_time))

    for event in events:
        if not event.user_id:
            continue
        if event.anonymous_id:
            link(event, "anonymous", event.anonymous_id)
        if event.type == ev.ALIAS and event.previous_id:
            link(event, "alias", event.previous_id)
        if event.wallet_address:
            link(event, "wallet", event.wallet_address)
    if links:
        Identity.insert_many(list(links.values())).on_conflict(
            conflict_target=[Identity.company_id, Identity.kind, Identity.value],
            update={
                Identity.user_id: SQL("CASE WHEN EXCLUDED.last_seen >= identities.last_seen THEN EXCLUDED.user_id ELSE identities.user_id END"),
                Identity.first_seen: fn.LEAST(Identity.first_seen, EXCLUDED.first_seen),
                Identity.last_seen: fn.GREATEST(Identity.last_seen, EXCLUDED.last_seen),
            },
        ).execute()


def upsert_wallets(events: list[Event]) -> None:
    wallets: dict[tuple, dict] = {}
    for event in events:
        if not event.wallet_address:
            continue
        row = wallets.setdefault((event.company_id, event.wallet_address), {
            "company_id": uuid.UUID(event.company_id), "address": event.wallet_address, "chains": set(),
            "user_id": "", "first_seen": naive(event.event_time)})
        row["last_seen"] = naive(event.event_time)
        row["user_id"] = event.user_id or row["user_id"]
        if event.chain_id:
            row["chains"].add(event.chain_id)
    for row in wallets.values():
        row["chains"] = sorted(row["chains"])
    if wallets:
        Wallet.insert_many(list(wallets.values())).on_conflict(
            conflict_target=[Wallet.company_id, Wallet.address],
            update={
                Wallet.chains: SQL("ARRAY(SELECT DISTINCT c FROM unnest(wallets.chains || EXCLUDED.chains) AS c ORDER BY c)"),
                Wallet.user_id: SQL("CASE WHEN EXCLUDED.user_id <> '' THEN EXCLUDED.user_id ELSE wallets.user_id END"),
                Wallet.first_seen: fn.LEAST(Wallet.first_seen, EXCLUDED.first_seen),
                Wallet.last_seen: fn.GREATEST(Wallet.last_seen, EXCLUDED.last_seen),
            },
        ).execute()


def upsert_sessions(events: list[Event]) -> None:
    sessions: dict[tuple, dict] = {}
    for event in events:
        if not event.session_id:
            continue
        row = sessions.setdefault((event.company_id, event.session_id), {
            "company_id": uuid.UUID(event.company_id), "session_id": event.session_id, "identity": event.identity,
            "started_at": naive(event.event_time), "events": 0, "page_views": 0, "entry_page": "", "exit_page": ""})
        row["ended_at"] = naive(event.event_time)
        row["events"] += 1
        if event.type == ev.PAGE:
            row["page_views"] += 1
            row["entry_page"] = row["entry_page"] or event.page_path
            row["exit_page"] = event.page_path
    if sessions:
        Session.insert_many(list(sessions.values())).on_conflict(
            conflict_target=[Session.company_id, Session.session_id],
            update={
                Session.events: Session.events + EXCLUDED.events,
                Session.page_views: Session.page_views + EXCLUDED.page_views,
                Session.entry_page: SQL(
                    "CASE WHEN sessions.entry_page = '' OR (EXCLUDED.entry_page <> '' AND EXCLUDED.started_at < sessions.started_at) "
                    "THEN EXCLUDED.entry_page ELSE sessions.entry_page END"),
                Session.exit_page: SQL(
                    "CASE WHEN EXCLUDED.exit_page <> '' AND EXCLUDED.ended_at >= sessions.ended_at "
                    "THEN EXCLUDED.exit_page ELSE sessions.exit_page END"),
                Session.started_at: fn.LEAST(Session.started_at, EXCLUDED.started_at),
                Session.ended_at: fn.GREATEST(Session.ended_at, EXCLUDED.ended_at),
            },
        ).execute()


def upsert_payments(events: list[Event]) -> None:
    payments: dict[tuple, dict] = defaultdict(dict)
    for event in events:
        if event.type != ev.PAYMENT:
            continue
        row = payments[(event.company_id, event.payment_id)]
        if not row:
            row.update(company_id=uuid.UUID(event.company_id), payment_id=event.payment_id, amount=None,
                       currency="", method="", user_id="", history=[], first_seen=naive(event.event_time))
        row.update(status=event.status, last_seen=naive(event.event_time))
        row["history"].append({"status": event.status, "at": event.event_time.isoformat()})
        row["amount"] = Decimal(event.amount) if event.amount else row["amount"]
        row["currency"] = event.currency or row["currency"]
        row["method"] = event.payment_method or row["method"]
        row["user_id"] = event.user_id or row["user_id"]
    if payments:
        PaymentSession.insert_many(list(payments.values())).on_conflict(
            conflict_target=[PaymentSession.company_id, PaymentSession.payment_id],
            update={
                PaymentSession.status: SQL(
                    "CASE WHEN EXCLUDED.last_seen >= payment_sessions.last_seen THEN EXCLUDED.status ELSE payment_sessions.status END"),
                PaymentSession.history: SQL("payment_sessions.history || EXCLUDED.history"),
                PaymentSession.amount: fn.COALESCE(EXCLUDED.amount, PaymentSession.amount),
                PaymentSession.currency: SQL("COALESCE(NULLIF(EXCLUDED.currency, ''), payment_sessions.currency)"),
                PaymentSession.method: SQL("COALESCE(NULLIF(EXCLUDED.method, ''), payment_sessions.method)"),
                PaymentSession.user_id: SQL("COALESCE(NULLIF(EXCLUDED.user_id, ''), payment_sessions.user_id)"),
                PaymentSession.first_seen: fn.LEAST(PaymentSession.first_seen, EXCLUDED.first_seen),
                PaymentSession.last_seen: fn.GREATEST(PaymentSession.last_seen, EXCLUDED.last_seen),
            },
        ).execute()
