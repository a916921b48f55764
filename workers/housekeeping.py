"""Actor `housekeeping`: removes what has outlived its use.

- ClickHouse `event_ids` partitions (weeks) wholly older than DEDUP_RETENTION_DAYS: resends older than
  that are no longer recognised, as documented;
- Postgres: expired or used one-time tokens, expired refresh tokens, login attempts, recorded stream
  entries, sent mails and finished privacy requests (with their exports) older than HOUSEKEEPING_KEEP_DAYS.
"""

from __future__ import annotations

import datetime as dt
import logging

from adtivity.jobs import HOUSEKEEPING
from adtivity.logs import log_event
from adtivity.settings import Settings
from models.accounts import LoginAttempt, MailOutbox, OneTimeToken, RefreshToken
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database, utcnow
from models.privacy import PrivacyRequest
from models.tracking import PersistedEntry
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)


def drop_old_dedup_weeks(client, layout: Layout, *, retention_days: int, today: dt.date) -> list[str]:
    """Drops the `event_ids` partitions whose whole week ended more than `retention_days` ago."""
    partition_ids = layout.partitions(client, "event_ids")
    cutoff = today - dt.timedelta(days=retention_days)
    dropped = []
    for partition_id in sorted(partition_ids):
        week = dt.datetime.strptime(partition_id, "%Y%m%d").date()  # a Date partition's id is YYYYMMDD
        if week + dt.timedelta(days=7) <= cutoff:
            # By id: ClickHouse 18.16 cannot name the 1970-01-01 week by its value.
            client.command(f"ALTER TABLE {layout.storage('event_ids')} DROP PARTITION ID '{partition_id}'")
            dropped.append(week.isoformat())
    return dropped


def prune_postgres(*, keep_days: int, now: dt.datetime) -> dict[str, int]:
    old = now - dt.timedelta(days=keep_days)
    with database.connection_context():
        return {
            "one_time_tokens": OneTimeToken.delete()
            .where((OneTimeToken.expires_at < now) | (OneTimeToken.used_at < old))
            .execute(),
            "refresh_tokens": RefreshToken.delete().where(RefreshToken.expires_at < now).execute(),
            "login_attempts": LoginAttempt.delete().where(LoginAttempt.created_at < old).execute(),
            "persisted_entries": PersistedEntry.delete().where(PersistedEntry.persisted_at < old).execute(),
            "mail_outbox": MailOutbox.delete().where(MailOutbox.sent_at < old).execute(),
            "privacy_requests": PrivacyRequest.delete().where(PrivacyRequest.finished_at < old).execute(),
        }


def keep_house(settings: Settings) -> dict:
    done = {
        "event_ids_weeks_dropped": drop_old_dedup_weeks(
            clickhouse_client(settings.clickhouse_url),
            Layout.from_settings(settings),
            retention_days=settings.dedup_retention_days,
            today=utcnow().date(),
        ),
        "rows_deleted": prune_postgres(keep_days=settings.housekeeping_keep_days, now=utcnow()),
    }
    log_event(log, "housekeeping done", **done)
    return done


@actor(HOUSEKEEPING, max_retries=3, time_limit=10 * 60_000)
def housekeeping() -> None:
    keep_house(current().settings)
