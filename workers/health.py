"""Actor `check_health`: probes every dependency, measures the pipeline (adtivity/pipeline_status.py: stream
backlogs, real-time as-of, queue depths, quarantine, rollup freshness), and stores the result in Redis
for /ready, the status endpoint and operators. The scheduler enqueues it every HEALTH_CHECK_SECONDS."""

from __future__ import annotations

import dataclasses
import time

import msgspec
import redis

from adtivity.jobs import CHECK_HEALTH
from adtivity.metrics import QUARANTINE_WAITING, STREAM_BACKLOG
from adtivity.pipeline_status import group_backlog, pipeline_status
from adtivity.probes import probe_all
from adtivity.settings import Settings
from models import redis_keys
from workers.actor import actor
from workers.runtime import current


def record_health(settings: Settings, client: redis.Redis, broker) -> dict:
    now = time.time()
    status = {
        "checked_at": now,
        "dependencies": {r.name: dataclasses.asdict(r) for r in probe_all(settings)},
        **pipeline_status(settings, client, broker, now),
    }
    for stream, groups in status["streams"].items() if "error" not in status["streams"] else ():
        for group, state in groups.items():
            STREAM_BACKLOG.labels(stream, group).set(group_backlog(state))
    if "entries" in status["quarantine"]:
        QUARANTINE_WAITING.set(status["quarantine"]["entries"])
    client.set(redis_keys.HEALTH_STATUS, msgspec.json.encode(status))
    client.set(redis_keys.process_heartbeat("worker"), status["checked_at"])
    return status


@actor(CHECK_HEALTH, max_retries=0, time_limit=30_000)
def check_health() -> None:
    runtime = current()
    record_health(runtime.settings, runtime.redis(2), runtime.broker)
