"""/v1/system/status: the operators' view (platform admins only): the scheduler's latest health
check and the last sign of life of each background process."""

from __future__ import annotations

import time

import falcon
import msgspec
import redis

from adtivity.querymetrics import pool_statistics
from models import redis_keys
from models.redis_client import get_many
from web.principals import require_platform_admin

BACKGROUND_PROCESSES = ("worker", "streams", "scheduler")


class SystemStatus:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_platform_admin(req)
        health, *beats = get_many(
            self.redis, [redis_keys.HEALTH_STATUS, *(redis_keys.process_heartbeat(p) for p in BACKGROUND_PROCESSES)]
        )
        now = time.time()
        resp.media = {
            "as_of": now,
            "health_check": msgspec.json.decode(health) if health else None,
            "pools": pool_statistics.snapshot(),  # this web process's connection pools
            "processes": {
                name: {"last_seen": float(beat), "seconds_ago": round(now - float(beat), 3)} if beat else None
                for name, beat in zip(BACKGROUND_PROCESSES, beats, strict=False)
            },
        }
