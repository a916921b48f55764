"""Housekeeping: old de-duplication weeks and spent rows go; what is still needed stays."""

from __future__ import annotations

import datetime as dt
import uuid

from models.accounts import LoginAttempt, OneTimeToken, RefreshToken
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database, utcnow
from models.privacy import PrivacyRequest
from models.tracking import PersistedEntry
from workers.housekeeping import drop_old_dedup_weeks, prune_postgres


def test_old_dedup_weeks_are_dropped_and_recent_ones_kept(settings):
    client = clickhouse_client(settings.clickhouse_url)
    company = uuid.uuid4()
    today = dt.date(2026, 6, 30)
    old, recent = dt.datetime(2026, 4, 1, 12), dt.datetime(2026, 6, 10, 12)
    client.insert(
        "event_ids",
        [[company, "old", old, "1-0"], [company, "recent", recent, "2-0"]],
        column_names=["company_id", "message_id", "received_at", "stream_entry"],
        column_type_names=["UUID", "String", "DateTime", "String"],
    )
    dropped = drop_old_dedup_weeks(client, Layout.from_settings(settings), retention_days=35, today=today)
    assert "2026-03-30" in dropped and "2026-06-08" not in dropped
    # Other tests may have left older weeks (1970's, from rows without a receive time): only old ones go.
    cutoff = today - dt.timedelta(days=35)
    assert all(dt.date.fromisoformat(week) + dt.timedelta(days=7) <= cutoff for week in dropped)
    left = client.query("SELECT message_id FROM event_ids WHERE company_id = %(c)s", parameters={"c": str(company)})
    assert [row[0] for row in left.result_rows] == ["recent"]
    client.command("ALTER TABLE event_ids DROP PARTITION '2026-06-08'")


def test_spent_postgres_rows_are_pruned(api):
    session = api.user()
    now = utcnow()
    with database.connection_context():
        expired = OneTimeToken.create(
            purpose="reset", token_digest="a", email=session.email, expires_at=now - dt.timedelta(hours=1)
        )
        live = OneTimeToken.create(
            purpose="reset", token_digest="b", email=session.email, expires_at=now + dt.timedelta(hours=1)
        )
        LoginAttempt.create(
            email="x@example.com", ip="1.2.3.4", succeeded=False, created_at=now - dt.timedelta(days=40)
        )
        LoginAttempt.create(email="x@example.com", ip="1.2.3.4", succeeded=False, created_at=now)
        PersistedEntry.create(stream="s", entry_id="old", persisted_at=now - dt.timedelta(days=40))
        PersistedEntry.create(stream="s", entry_id="new", persisted_at=now)
        for finished in (now - dt.timedelta(days=40), now, None):
            PrivacyRequest.create(company_id=uuid.uuid4(), kind="export", user_id="u", finished_at=finished)
        live_refresh = RefreshToken.select().count()
    deleted = prune_postgres(keep_days=30, now=now)
    assert deleted["one_time_tokens"] == 1 and deleted["login_attempts"] == 1 and deleted["persisted_entries"] == 1
    assert deleted["privacy_requests"] == 1
    with database.connection_context():
        assert not OneTimeToken.select().where(OneTimeToken.id == expired.id).exists()
        assert OneTimeToken.select().where(OneTimeToken.id == live.id).exists()
        assert [e.entry_id for e in PersistedEntry.select()] == ["new"]
        assert RefreshToken.select().count() == live_refresh  # none of them has expired
