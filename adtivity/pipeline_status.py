"""The pipeline's state, measured for the health check (workers/health.py) and the operator CLI: each
stream's consumer groups, the real-time snapshots' as-of, Dramatiq queue depths, the quarantine and
how fresh each company's rollups are."""

from __future__ import annotations

import datetime as dt
import time

import peewee
import redis
from dramatiq.common import dq_name
from peewee import fn

from adtivity.settings import Settings
from models import redis_keys
from models.db import database
from models.redis_streams import all_streams, entry_id_parts, first_undelivered
from models.rollups import RollupState
from models.tracking import Quarantine

STALEST_SHOWN = 20


def stream_groups(settings: Settings, client: redis.Redis) -> dict:
    """Per stream, per consumer group: entries delivered but not acknowledged, and not yet delivered
    (None where Redis cannot tell the number, but there is at least one). A group whose last
    delivered entry is the stream's newest has nothing left to read, whatever Redis' own `lag` says:
    that counter can be stale after Redis restarts from its append-only file, and is then unknown
    (null); in that case `first_undelivered` looks whether any entry follows the last delivered one."""
    streams = {}
    for stream in all_streams(settings.stream_shards):
        try:
            groups = client.xinfo_groups(stream)
            newest = entry_id_parts(client.xinfo_stream(stream)["last-generated-id"])
        except redis.ResponseError:  # not created yet
            continue
        states = {}
        for group in groups:
            delivered = group["last-delivered-id"]
            lag = 0 if entry_id_parts(delivered) >= newest else group.get("lag")
            if lag is None and not first_undelivered(client, stream, delivered):
                lag = 0
            states[group["name"].decode()] = {"pending": group["pending"], "lag": lag}
        streams[stream] = states
    return streams


def group_backlog(group: dict) -> int:
    """Entries a consumer group (as `stream_groups` reports it) has still to acknowledge: pending,
    plus not yet delivered; where Redis cannot tell how many are not yet delivered, at least one is
    counted, so a backlog is never reported empty while entries wait."""
    return (group["pending"] or 0) + (1 if group["lag"] is None else group["lag"])


def realtime_freshness(client: redis.Redis, now: float) -> dict:
    as_of = client.get(redis_keys.REALTIME_AS_OF)
    return {"as_of": float(as_of) if as_of else None, "seconds_behind": round(now - float(as_of), 3) if as_of else None}


def queue_depths(broker) -> dict:
    """Dramatiq messages waiting (or running) per queue, and delayed (retries) per queue."""
    return {
        name: {"waiting": broker.do_qsize(name), "delayed": broker.do_qsize(dq_name(name))}
        for name in sorted(q for q in broker.get_declared_queues() if not q.endswith(".DQ"))
    }


def quarantine_size() -> dict:
    with database.connection_context():
        waiting = Quarantine.select().where(Quarantine.replayed_at.is_null())
        return {
            "entries": waiting.count(),
            "events": waiting.select(fn.COALESCE(fn.SUM(Quarantine.events), 0)).scalar(),
        }


def rollup_freshness(settings: Settings, now: float) -> dict:
    """How many companies' rollups are older than three scheduling intervals, and the last successful
    rollup of the STALEST_SHOWN companies that have waited longest."""
    stale_before = dt.datetime.fromtimestamp(now - 3 * settings.rollup_every_seconds, dt.UTC).replace(tzinfo=None)
    with database.connection_context():
        stalest = RollupState.select().order_by(RollupState.computed_at).limit(STALEST_SHOWN)
        return {
            "companies": RollupState.select().count(),
            "stale": RollupState.select().where(RollupState.computed_at < stale_before).count(),
            "stalest": [
                {
                    "company_id": str(row.company_id),
                    "computed_at": row.computed_at.isoformat(),
                    "complete_until": row.complete_until.isoformat(),
                }
                for row in stalest
            ],
        }


def pipeline_status(settings: Settings, client: redis.Redis, broker, now: float | None = None) -> dict:
    """Every measure above; one whose store is down says so instead of failing the rest."""
    now = now or time.time()
    status = {}
    for name, measure in (
        ("streams", lambda: stream_groups(settings, client)),
        ("realtime", lambda: realtime_freshness(client, now)),
        ("queues", lambda: queue_depths(broker)),
        ("quarantine", quarantine_size),
        ("rollups", lambda: rollup_freshness(settings, now)),
    ):
        try:
            status[name] = measure()
        except (redis.RedisError, peewee.PeeweeException) as error:
            status[name] = {"error": type(error).__name__}
    return status
