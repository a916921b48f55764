"""Sending quarantined stream entries through the pipeline again: one function for the API
(`POST .../quarantine/replay`) and the operator CLI (`replay-quarantine`)."""

from __future__ import annotations

import uuid

import redis

from models.db import database, utcnow
from models.redis_streams import entry_fields
from models.tracking import Quarantine


def replay_quarantined(client: redis.Redis, company_id: uuid.UUID | None = None) -> tuple[int, int]:
    """Re-adds every entry not yet replayed (of one company, or of all) to the stream it failed in,
    under a new name so it counts once, and marks it replayed; returns (entries, events)."""
    with database.atomic():
        query = Quarantine.select().where(Quarantine.replayed_at.is_null())
        if company_id is not None:
            query = query.where(Quarantine.company_id == company_id)
        rows = list(query.for_update())
        for row in rows:
            client.xadd(row.stream, entry_fields(str(row.company_id or ""), f"replay-{row.id}", bytes(row.payload)))
        Quarantine.update(replayed_at=utcnow()).where(Quarantine.id.in_([row.id for row in rows])).execute()
    return len(rows), sum(row.events for row in rows)
