"""Builds the APScheduler scheduler with its periodic jobs and runs it until SIGTERM/SIGINT.

Each job only enqueues a Dramatiq actor by name; the heavy work runs in the worker process. Every
replica runs the same schedule, but only the leader (scheduler/leader.py) lets its jobs through.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from collections.abc import Callable

import redis
from apscheduler.schedulers.blocking import BlockingScheduler

from adtivity.errortracking import init_error_tracking
from adtivity.jobs import (
    APPLY_RETENTION,
    CHECK_HEALTH,
    ENTITIES_SHARD,
    HOUSEKEEPING,
    PERSIST_SHARD,
    REBUILD_DEDUP,
    ROLLUP_ALL,
    TRIM_STREAMS,
    VERIFY_CHAIN,
    Jobs,
    redis_broker,
)
from adtivity.logs import configure_logging, log_event
from adtivity.metrics import serve
from adtivity.settings import Settings
from models import redis_keys
from models.redis_client import redis_client
from models.redis_streams import stranded_shards, unpumped
from scheduler.leader import Leadership

log = logging.getLogger("scheduler")
PUMP_QUEUED_SECONDS = 60
PUMPS = (("persist", PERSIST_SHARD), ("entities", ENTITIES_SHARD))


def enqueuer(jobs: Jobs, actor_name: str, *arguments: tuple) -> Callable[[], None]:
    """A job that enqueues the actor once, or once per tuple of arguments given."""

    def enqueue() -> None:
        for args in arguments or ((),):
            jobs.enqueue(actor_name, *args)

    enqueue.__name__ = f"enqueue_{actor_name}"
    return enqueue


def build_scheduler(settings: Settings, jobs: Jobs, client: redis.Redis, leadership: Leadership) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    leading = leadership.only_when_leading

    def enqueue_health_check() -> None:
        jobs.enqueue(CHECK_HEALTH)
        client.set(redis_keys.process_heartbeat("scheduler"), time.time())

    draining = stranded_shards(client, settings.stream_shards)
    if draining:
        log_event(
            log,
            "draining shards beyond STREAM_SHARDS",
            level=logging.WARNING,
            shards=draining,
            stream_shards=settings.stream_shards,
        )

    def ensure_persist_pumps() -> None:
        """Starts each pump (persist and entities, per shard) that has none running or queued (after a
        crash, or at first); also those of shards left by a larger STREAM_SHARDS, until they are empty."""
        for shard in [shard for shard in draining if not unpumped(client, shard)]:
            draining.remove(shard)
            log_event(log, "shard drained", shard=shard)
        for kind, actor in PUMPS:
            for shard in [*range(settings.stream_shards), *draining]:
                if client.exists(redis_keys.pump_lease(kind, shard)):
                    continue
                if client.set(redis_keys.pump_queued(kind, shard), 1, nx=True, ex=PUMP_QUEUED_SECONDS):
                    jobs.enqueue(actor, shard)

    now = dt.datetime.now(dt.UTC)
    scheduler.add_job(
        leadership.check,
        "interval",
        seconds=settings.scheduler_leader_check_seconds,
        id="leadership",
        next_run_time=now,
    )
    scheduler.add_job(
        leading(enqueue_health_check),
        "interval",
        seconds=settings.health_check_seconds,
        id="health-check",
        next_run_time=now + dt.timedelta(seconds=1),
    )
    scheduler.add_job(
        leading(ensure_persist_pumps),
        "interval",
        seconds=settings.persist_ensure_seconds,
        id="persist-pumps",
        next_run_time=now + dt.timedelta(seconds=1),
    )
    scheduler.add_job(
        leading(enqueuer(jobs, TRIM_STREAMS)), "interval", seconds=settings.stream_trim_seconds, id="trim-streams"
    )
    scheduler.add_job(
        leading(enqueuer(jobs, HOUSEKEEPING)), "interval", seconds=settings.housekeeping_seconds, id="housekeeping"
    )
    scheduler.add_job(
        leading(enqueuer(jobs, ROLLUP_ALL)),
        "interval",
        seconds=settings.rollup_every_seconds,
        id="rollups",
        next_run_time=now + dt.timedelta(seconds=5),
    )
    scheduler.add_job(
        leading(enqueuer(jobs, APPLY_RETENTION)), "interval", seconds=settings.retention_every_seconds, id="retention"
    )
    scheduler.add_job(
        leading(enqueuer(jobs, REBUILD_DEDUP)), "interval", seconds=settings.dedup_check_seconds, id="dedup-rebuild"
    )
    if settings.chain_rpc:
        scheduler.add_job(
            leading(enqueuer(jobs, VERIFY_CHAIN, *((chain,) for chain in settings.chain_rpc))),
            "interval",
            seconds=settings.chain_poll_seconds,
            id="verify-chains",
        )
    return scheduler


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings, process="scheduler")
    init_error_tracking(settings, process="scheduler")
    client = redis_client(settings, timeout=2)
    client.ping()
    leadership = Leadership(client, lease_seconds=settings.scheduler_lease_seconds)
    jobs = Jobs(redis_broker(settings))
    scheduler = build_scheduler(settings, jobs, client, leadership)

    def stop(signum, frame) -> None:
        log_event(log, "stopping", signal=signal.Signals(signum).name)
        scheduler.shutdown(wait=False)
        leadership.resign()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serve(settings, settings.scheduler_metrics_port, "scheduler")
    log_event(log, "ready", jobs=[job.id for job in scheduler.get_jobs()])
    scheduler.start()
    return 0
