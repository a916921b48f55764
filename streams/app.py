"""The Faust app, its topics, tables and agents, declared top to bottom.

Broker settings follow INFRA.md: short session/rebalance timeouts and heartbeats (Tansu holds a
group join for half the session timeout), earliest offsets, replication factor 1, no web server (nothing
listens), and the producer batch size as a setting (1 works around a Tansu bug; real Kafka needs none).
"""
from __future__ import annotations

import logging
import os
import time

import faust
import redis.asyncio as aioredis

from adtivity.logs import log_event, log_handler
from adtivity.settings import Settings
from models import redis_keys

log = logging.getLogger("streams")
HEARTBEAT_SECONDS = 1.0


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.streams_app_id,
        broker=settings.kafka_broker_url,
        store="memory://",
        topic_replication_factor=1,
        topic_partitions=4,
        producer_max_batch_size=settings.kafka_producer_max_batch_size,
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        datadir=settings.streams_data_dir,
        loghandlers=[log_handler(settings, process="streams")],
    )


settings = Settings.from_env()
app = create_app(settings)
redis_client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2)  # connects lazily


@app.task
async def announce_ready() -> None:
    log_event(log, "ready", pid=os.getpid(), broker=settings.kafka_bootstrap)


@app.timer(interval=HEARTBEAT_SECONDS)
async def heartbeat() -> None:
    """Tells the health check the streams process is alive (and, later, how fresh its snapshots are)."""
    await redis_client.set(redis_keys.process_heartbeat("streams"), time.time())
