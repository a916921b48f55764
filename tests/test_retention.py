"""Retention: months older than every company's retention are dropped whole, a shorter retention
removes that company's older rows only, and Postgres rows follow each company's cutoff."""

from __future__ import annotations

import datetime as dt
import uuid

from models.accounts import Company
from models.clickhouse import clickhouse_client
from models.db import database, utcnow
from models.rollups import DAY, RollupCount
from models.tracking import EndUser
from tests.processes import wait_for
from workers.retention import apply_retention_now, months_before

NOW = dt.datetime(2026, 11, 15, 12, 0)


def insert_events(client, company_id: str, moments: list[dt.datetime]) -> None:
    client.insert(
        "events",
        [[uuid.UUID(company_id), f"m{i}", "track", moment] for i, moment in enumerate(moments)],
        column_names=["company_id", "message_id", "type", "event_time"],
        column_type_names=["UUID", "String", "String", "DateTime"],
    )


def months_stored(client, company_id: str) -> list[int]:
    return [
        row[0]
        for row in client.query(
            "SELECT DISTINCT toYYYYMM(event_time) AS m FROM events WHERE company_id = toUUID(%(c)s) ORDER BY m",
            parameters={"c": company_id},
        ).result_rows
    ]


def test_months_before():
    assert months_before(NOW, 0) == dt.datetime(2026, 11, 1)
    assert months_before(NOW, 12) == dt.datetime(2025, 11, 1)
    assert months_before(dt.datetime(2026, 1, 31), 1) == dt.datetime(2025, 12, 1)


def test_retention_drops_old_months_and_trims_shorter_retentions(api, settings):
    client = clickhouse_client(settings.clickhouse_url)
    short, default = api.company(api.user()), api.company(api.user())
    Company.update(retention_months=2).where(Company.id == short).execute()
    moments = [dt.datetime(2025, 3, 10), dt.datetime(2026, 6, 10), dt.datetime(2026, 10, 10), dt.datetime(2026, 11, 10)]
    for company in (short, default):
        insert_events(client, company, moments)
        with database.connection_context():
            for moment in moments:
                RollupCount.create(
                    company_id=company, grain=DAY, metric="events", bucket=moment, amount=1, computed_at=utcnow()
                )
            EndUser.create(company_id=company, user_id="gone", first_seen=moments[0], last_seen=moments[1])
            EndUser.create(company_id=company, user_id="here", first_seen=moments[0], last_seen=moments[3])

    done = apply_retention_now(settings, now=NOW)
    assert "202503" in done["months_dropped"] and done["companies_trimmed"] == 1
    # the delete is a mutation, applied in the background
    wait_for(lambda: months_stored(client, short) == [202610, 202611], 15, "the shorter retention's delete")
    assert months_stored(client, default) == [202606, 202610, 202611]
    with database.connection_context():
        kept = {
            c: sorted(r.bucket.month for r in RollupCount.select().where(RollupCount.company_id == c))
            for c in (short, default)
        }
        users = {
            c: sorted(u.user_id for u in EndUser.select().where(EndUser.company_id == c)) for c in (short, default)
        }
    assert kept == {short: [10, 11], default: [6, 10, 11]}
    assert users == {short: ["here"], default: ["gone", "here"]}
