"""/health (liveness: touches nothing) and /ready (every dependency, with its latency, and a summary
of the scheduler's latest health check: backlogs, quarantine, stale rollups; no tenant details)."""

from __future__ import annotations

import falcon
import msgspec
import redis

from adtivity.pipeline_status import group_backlog
from adtivity.probes import probe_all
from adtivity.settings import Settings
from models import redis_keys


def pipeline_summary(client: redis.Redis) -> dict | None:
    """The latest health check, summed up; None when there is none (or Redis cannot say)."""
    try:
        stored = client.get(redis_keys.HEALTH_STATUS)
    except redis.RedisError:
        return None
    if not stored:
        return None
    check = msgspec.json.decode(stored)
    groups = [group for stream in check.get("streams", {}).values() for group in stream.values()]
    return {
        "checked_at": check["checked_at"],
        "stream_backlog": sum(group_backlog(group) for group in groups),
        "queued_jobs": sum(
            queue.get("waiting", 0) for queue in check.get("queues", {}).values() if isinstance(queue, dict)
        ),
        "quarantined_entries": check.get("quarantine", {}).get("entries"),
        "stale_rollups": check.get("rollups", {}).get("stale"),
        "realtime_seconds_behind": check.get("realtime", {}).get("seconds_behind"),
    }


class Health:
    PUBLIC = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Ready:
    PUBLIC = True

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = probe_all(self.settings)
        ready = all(r.up for r in results if r.required)
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "5")
        resp.media = {
            "status": "ready" if ready else "unavailable",
            "dependencies": {
                r.name: {"up": r.up, "required": r.required, "latency_ms": r.latency_ms, "error": r.error}
                for r in results
            },
            "pipeline": pipeline_summary(self.redis),
        }
