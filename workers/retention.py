"""Actor `apply_retention`: removes what is older than each company's retention (months, default 13).

- ClickHouse `events` is partitioned by month for every company at once: a month is dropped whole when
  it ended before the longest retention of any live company; within the months kept, a company with a
  shorter retention has its older rows deleted by a mutation (only when it has some).
- Postgres: rollup rows and sketches older than the company's cutoff, and its end users, identities,
  wallets, sessions and payment sessions last seen before it.
The scheduler enqueues it every RETENTION_EVERY_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import logging

from adtivity.jobs import APPLY_RETENTION
from adtivity.logs import log_event
from adtivity.settings import Settings
from models.accounts import Company
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database, utcnow
from models.events_table import unix_seconds
from models.rollups import RollupCount, RollupSketch
from models.tracking import EndUser, Identity, PaymentSession, Session, Wallet
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The first instant of the month `months` months before `moment`'s month."""
    index = moment.year * 12 + moment.month - 1 - months
    return dt.datetime(index // 12, index % 12 + 1, 1)


def drop_old_months(client, layout: Layout, *, keep_months: int, now: dt.datetime) -> list[str]:
    """Drops the `events` partitions (YYYYMM) of months before the kept ones."""
    first_kept = months_before(now, keep_months - 1)
    partitions = layout.partitions(client, "events")
    dropped = []
    for partition_id in sorted(partitions):
        if int(partition_id) < first_kept.year * 100 + first_kept.month:
            client.command(f"ALTER TABLE {layout.storage('events')} DROP PARTITION ID '{partition_id}'")
            dropped.append(partition_id)
    return dropped


def apply_retention_now(settings: Settings, *, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    client = clickhouse_client(settings.clickhouse_url)
    with database.connection_context():
        companies = list(Company.select(Company.id, Company.retention_months).where(Company.deleted_at.is_null()))
    longest = max((c.retention_months for c in companies), default=13)
    done = {
        "months_dropped": drop_old_months(client, Layout.from_settings(settings), keep_months=longest, now=now),
        "companies_trimmed": 0,
    }
    for company in companies:
        cutoff = months_before(now, company.retention_months - 1)
        params = {"c": str(company.id), "cutoff": unix_seconds(cutoff)}
        old = client.query(
            "SELECT count() FROM events WHERE company_id = toUUID(%(c)s) AND event_time < toDateTime(%(cutoff)s)",
            parameters=params,
        ).result_rows[0][0]
        if old:
            client.command(
                f"ALTER TABLE {Layout.from_settings(settings).storage('events')} "
                "DELETE WHERE company_id = toUUID(%(c)s) AND event_time < toDateTime(%(cutoff)s)",
                parameters=params,
            )
            done["companies_trimmed"] += 1
        with database.connection_context(), database.atomic():
            for model in (RollupCount, RollupSketch):
                model.delete().where(model.company_id == company.id, model.bucket < cutoff).execute()
            for model in (EndUser, Identity, Wallet, PaymentSession):
                model.delete().where(model.company_id == company.id, model.last_seen < cutoff).execute()
            Session.delete().where(Session.company_id == company.id, Session.ended_at < cutoff).execute()
    log_event(log, "retention applied", **done)
    return done


@actor(APPLY_RETENTION, max_retries=3, time_limit=30 * 60_000)
def apply_retention() -> None:
    apply_retention_now(current().settings)
