"""Actor `check_health`: probes every dependency, reads each stream's consumer groups (entries pending
and not yet delivered) and the real-time snapshots' as-of, and stores the result in Redis for /ready,
the status endpoint and operators. The scheduler enqueues it every HEALTH_CHECK_SECONDS."""
from __future__ import annotations

import dataclasses
import time

import dramatiq
import msgspec
import redis

from adtivity.jobs import CHECK_HEALTH
from adtivity.probes import probe_all
from adtivity.settings import Settings
from models import redis_keys
from models.streams import entities_stream_key, stream_key
from workers import settings


def stream_groups(settings: Settings, client: redis.Redis) -> dict:
    """Per stream, per consumer group: entries delivered but not acknowledged, and not yet delivered
    (None where Redis cannot tell)."""
    streams = {}
    for stream in [key(shard) for shard in range(settings.stream_shards) for key in (stream_key, entities_stream_key)]:
        try:
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:  # not created yet
            continue
        streams[stream] = {g["name"].decode(): {"pending": g["pending"], "lag": g.get("lag")} for g in groups}
    return streams


def realtime_freshness(client: redis.Redis, now: float) -> dict:
    as_of = client.get(redis_keys.REALTIME_AS_OF)
    return {"as_of": float(as_of) if as_of else None, "seconds_behind": round(now - float(as_of), 3) if as_of else None}


def record_health(settings: Settings, client: redis.Redis) -> dict:
    now = time.time()
    status = {
        "checked_at": now,
        "dependencies": {r.name: dataclasses.asdict(r) for r in probe_all(settings)},
        "streams": stream_groups(settings, client),
        "realtime": realtime_freshness(client, now),
    }
    client.set(redis_keys.HEALTH_STATUS, msgspec.json.encode(status))
    client.set(redis_keys.process_heartbeat("worker"), status["checked_at"])
    return status


@dramatiq.actor(actor_name=CHECK_HEALTH, max_retries=0, time_limit=30_000)
def check_health() -> None:
    record_health(settings, redis.Redis.from_url(settings.redis_url, socket_timeout=2))
