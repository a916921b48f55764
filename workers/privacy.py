"""Actors `delete_user` and `export_user`: carry out a privacy request (models/privacy.py) for one end
user of a company: the user id and every anonymous id linked to it (the `identities` table).

Delete removes the user's events (ClickHouse mutations on `events`, `identity_first_seen` and the
verifications of their transactions, `tx_verifications`, awaited), their end-user, identity, wallet,
session, payment and reported-transaction rows, then recomputes the company's rollups from
the day of the user's first event, so no count or sketch keeps them. Real-time snapshots forget them
when their minute and day buckets expire (within a day).
Export writes every event of the user and their entity rows as gzip NDJSON, one object a line, each
with "record" (end_user, identity, wallet, session, payment, transaction_verification, event); at most PRIVACY_EXPORT_MAX_BYTES.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import uuid

import peewee
import redis

from adtivity.jobs import DELETE_USER, EXPORT_USER
from adtivity.logs import log_event
from adtivity.settings import Settings
from models.chain import ChainTransaction
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database, utcnow
from models.privacy import DONE, FAILED, RUNNING, PrivacyRequest
from models.tracking import EndUser, Identity, PaymentSession, Session, Wallet
from rollups.compute import day_of, rollup_company_now
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)
USER_EVENTS = "company_id = toUUID(%(c)s) AND (user_id = %(u)s OR anonymous_id IN %(ids)s)"
USER_TRANSACTIONS = (
    f"SELECT DISTINCT chain_id, lower(tx_hash) FROM events WHERE {USER_EVENTS} AND type = 'transaction' "
    "AND tx_hash != '' AND chain_id != ''"
)


class ExportTooLarge(Exception):
    pass


def identities_of(company_id: uuid.UUID, user_id: str) -> list[str]:
    with database.connection_context():
        linked = [
            row.value
            for row in Identity.select(Identity.value).where(
                Identity.company_id == company_id, Identity.kind == "anonymous", Identity.user_id == user_id
            )
        ]
    return [user_id, *linked]


def entity_rows(company_id: uuid.UUID, user_id: str, identities: list[str]) -> list[tuple[str, object]]:
    """(record kind, peewee query) of the user's rows in Postgres."""
    return [
        ("end_user", EndUser.select().where(EndUser.company_id == company_id, EndUser.user_id == user_id)),
        ("identity", Identity.select().where(Identity.company_id == company_id, Identity.user_id == user_id)),
        ("wallet", Wallet.select().where(Wallet.company_id == company_id, Wallet.user_id == user_id)),
        ("session", Session.select().where(Session.company_id == company_id, Session.identity.in_(identities))),
        (
            "payment",
            PaymentSession.select().where(PaymentSession.company_id == company_id, PaymentSession.user_id == user_id),
        ),
    ]


def reported_by_user(company_id: uuid.UUID, transactions: list[tuple[str, str]]) -> peewee.Expression:
    """The chain_transactions rows of the user's reported transactions ((chain id, hash) pairs)."""
    return (ChainTransaction.company_id == company_id) & peewee.Tuple(
        ChainTransaction.chain_id, ChainTransaction.tx_hash
    ).in_(transactions)


def wait_for_mutations(clickhouse, layout: Layout, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while layout.mutations_running(clickhouse):
        if time.monotonic() > deadline:
            raise TimeoutError("ClickHouse mutations still running")
        time.sleep(0.2)


def delete_user_data(settings: Settings, client: redis.Redis, request: PrivacyRequest) -> int:
    clickhouse = clickhouse_client(settings.clickhouse_url)
    identities = identities_of(request.company_id, request.user_id)
    params = {"c": str(request.company_id), "u": request.user_id, "ids": tuple(identities)}
    first, count = clickhouse.query(
        f"SELECT min(event_time), count() FROM events WHERE {USER_EVENTS}", parameters=params
    ).result_rows[0]
    transactions = [tuple(row) for row in clickhouse.query(USER_TRANSACTIONS, parameters=params).result_rows]
    layout = Layout.from_settings(settings)
    if transactions:
        # Postgres first: a verification round running meanwhile then has no row left to export again.
        with database.connection_context():
            ChainTransaction.delete().where(reported_by_user(request.company_id, transactions)).execute()
        clickhouse.command(
            f"ALTER TABLE {layout.storage('tx_verifications')} "
            "DELETE WHERE company_id = toUUID(%(c)s) AND concat(chain_id, '|', tx_hash) IN %(transactions)s",
            parameters={**params, "transactions": tuple(f"{chain}|{tx_hash}" for chain, tx_hash in transactions)},
        )
    clickhouse.command(f"ALTER TABLE {layout.storage('events')} DELETE WHERE {USER_EVENTS}", parameters=params)
    clickhouse.command(
        f"ALTER TABLE {layout.storage('identity_first_seen')} "
        "DELETE WHERE company_id = toUUID(%(c)s) AND identity IN %(ids)s",
        parameters=params,
    )
    wait_for_mutations(clickhouse, layout, settings.privacy_mutation_timeout_seconds)
    with database.connection_context(), database.atomic():
        for _, query in entity_rows(request.company_id, request.user_id, identities):
            for row in list(query):
                row.delete_instance()
    if count:
        rollup_company_now(settings, client, clickhouse, str(request.company_id), start=day_of(first))
    return count


def export_user_data(settings: Settings, request: PrivacyRequest) -> tuple[bytes, int]:
    clickhouse = clickhouse_client(settings.clickhouse_url)
    identities = identities_of(request.company_id, request.user_id)
    lines = []
    params = {"c": str(request.company_id), "u": request.user_id, "ids": tuple(identities)}
    transactions = [tuple(row) for row in clickhouse.query(USER_TRANSACTIONS, parameters=params).result_rows]
    with database.connection_context():
        for record, query in entity_rows(request.company_id, request.user_id, identities):
            for row in query.dicts():
                lines.append(json.dumps({"record": record, **row}, default=str).encode())
        for row in ChainTransaction.select().where(reported_by_user(request.company_id, transactions)).dicts():
            lines.append(json.dumps({"record": "transaction_verification", **row}, default=str).encode())
    events = clickhouse.raw_query(
        f"SELECT 'event' AS record, * FROM events WHERE {USER_EVENTS} ORDER BY event_time, message_id",
        parameters=params,
        fmt="JSONEachRow",
        settings={"max_execution_time": settings.query_timeout_seconds * 6},
    )
    body = b"\n".join(lines) + (b"\n" if lines else b"") + events
    if len(body) > settings.privacy_export_max_bytes:
        raise ExportTooLarge(f"the export would be {len(body)} bytes, over PRIVACY_EXPORT_MAX_BYTES")
    return gzip.compress(body), events.count(b"\n")


def carry_out(request_id: str, work) -> None:
    """Runs `work(request)` and records the outcome on the request."""
    with database.connection_context():
        request = PrivacyRequest.get_by_id(uuid.UUID(request_id))
        request.status = RUNNING
        request.save()
    try:
        outcome = work(request)
    except Exception as error:  # recorded for the caller, then logged with its trace
        with database.connection_context():
            PrivacyRequest.update(
                status=FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=utcnow()
            ).where(PrivacyRequest.id == request.id).execute()
        log_event(
            log,
            "privacy request failed",
            level=logging.ERROR,
            request=request_id,
            kind=request.kind,
            error=type(error).__name__,
            exc_info=True,
        )
        return
    with database.connection_context():
        PrivacyRequest.update(status=DONE, finished_at=utcnow(), **outcome).where(
            PrivacyRequest.id == request.id
        ).execute()
    log_event(log, "privacy request done", request=request_id, kind=request.kind, events=outcome.get("events"))


@actor(DELETE_USER, max_retries=0, time_limit=60 * 60_000)
def delete_user(request_id: str) -> None:
    runtime = current()
    carry_out(request_id, lambda request: {"events": delete_user_data(runtime.settings, runtime.redis(10), request)})


@actor(EXPORT_USER, max_retries=0, time_limit=60 * 60_000)
def export_user(request_id: str) -> None:
    def work(request: PrivacyRequest) -> dict:
        result, events = export_user_data(current().settings, request)
        return {"result": result, "events": events}

    carry_out(request_id, work)
