"""The Faust app, its topic, table, agent, bridge and publisher, declared top to bottom.

Data flow: the bridge (streams/bridge.py) moves stored events from the Redis entities streams to the
`<app id>-events` topic, one message per company and batch; the `aggregate_events` agent applies each
message to the company's minute and day buckets in the changelogged `buckets` table (recovered on
restart), each changed bucket written once per message; every REALTIME_PUBLISH_SECONDS the publisher
turns buckets into one snapshot per company in Redis and stamps REALTIME_AS_OF, which the web API
reads (models/realtime.py has the bucket logic).

Broker settings follow INFRA.md: short session/rebalance timeouts and heartbeats (Tansu holds a
group join for half the session timeout), earliest offsets, replication factor 1, no web server (nothing
listens), and the producer batch size as a setting (1 works around a Tansu bug; real Kafka needs none).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import faust
import msgspec
import redis.asyncio as aioredis

from adtivity.logs import log_event, log_handler
from adtivity.settings import Settings
from models import redis_keys
from models import realtime
from streams.bridge import Bridge

log = logging.getLogger("streams")
HEARTBEAT_SECONDS = 1.0
SNAPSHOT_TTL_SECONDS = 2 * 86400
_json = msgspec.json.Encoder()


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.streams_app_id,
        broker=settings.kafka_broker_url,
        store="memory://",
        topic_replication_factor=1,
        topic_partitions=settings.realtime_partitions,
        producer_max_batch_size=settings.kafka_producer_max_batch_size,
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",  # every key and value is bytes we encode ourselves (msgpack)
        value_serializer="raw",
        datadir=settings.streams_data_dir,
        loghandlers=[log_handler(settings, process="streams")],
    )


settings = Settings.from_env()
app = create_app(settings)
redis_client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)  # connects lazily
events_topic = app.topic(f"{settings.streams_app_id}-events", key_type=bytes, value_type=bytes,
                         partitions=settings.realtime_partitions)
buckets = app.Table("buckets", default=None, key_type=bytes, value_type=bytes, partitions=settings.realtime_partitions)


class Publishing:
    """What the agent tells the publisher (companies whose buckets changed) and the publisher tells
    the agent (expired bucket keys, deleted by the agent, where a table may be written)."""

    def __init__(self) -> None:
        self.changed: set[str] = set()
        self.expired: dict[str, list[bytes]] = {}
        self.published: set[str] = set()
        self.minute = -1


publishing = Publishing()


@app.task
async def announce_ready() -> None:
    log_event(log, "ready", pid=os.getpid(), broker=settings.kafka_bootstrap)


@app.task
async def bridge_streams() -> None:
    bridge = Bridge(settings, redis_client, events_topic)
    await asyncio.gather(*(bridge.run_shard(shard) for shard in range(settings.stream_shards)))


@app.agent(events_topic)
async def aggregate_events(stream) -> None:
    async for event in stream.events():
        try:
            message = realtime.decode_message(event.value)
            changed = realtime.apply_message(message, buckets.get, now=time.time(), lg_k=settings.realtime_hll_lg_k,
                                              max_keys=settings.realtime_max_keys)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
            log_event(log, "undecodable real-time message skipped", level=logging.ERROR, error=str(error),
                      partition=event.message.partition, offset=event.message.offset)
            continue
        for key, bucket in changed.items():
            buckets[key] = realtime.encode_bucket(bucket)
        for key in publishing.expired.pop(message.company_id, ()):
            if key in buckets:
                del buckets[key]
        if changed:
            publishing.changed.add(message.company_id)


@app.timer(interval=settings.realtime_publish_seconds)
async def publish_snapshots() -> None:
    """Snapshots of the companies whose buckets changed (of every company when a minute begins,
    as the windows move), then the as-of stamp. Nothing while the table is being recovered."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        return
    now = time.time()
    minute = int(now // 60)
    companies: dict[str, tuple[dict[int, realtime.Bucket], list[bytes]]] = {}
    expired: dict[str, list[bytes]] = {}
    for key, value in list(buckets.items()):
        company_id, kind, number = realtime.parse_key(key)
        if realtime.is_expired(kind, number, now):
            expired.setdefault(company_id, []).append(key)
            continue
        minutes, day = companies.setdefault(company_id, ({}, []))
        if kind == "m":
            minutes[number] = realtime.decode_bucket(value)
        else:
            day.append(value)
    publishing.expired = expired
    changed, publishing.changed = publishing.changed, set()
    due = set(companies) if minute != publishing.minute else changed & set(companies)
    async with redis_client.pipeline(transaction=False) as pipe:
        for company_id in due:
            minutes, day = companies[company_id]
            today = realtime.decode_bucket(day[0]) if day else None
            view = realtime.snapshot(minutes, today, now=now, lg_k=settings.realtime_hll_lg_k)
            pipe.set(redis_keys.realtime_snapshot(company_id), _json.encode(view), ex=SNAPSHOT_TTL_SECONDS)
        for company_id in publishing.published - set(companies):
            pipe.delete(redis_keys.realtime_snapshot(company_id))
        pipe.set(redis_keys.REALTIME_AS_OF, now)
        await pipe.execute()
    publishing.published = set(companies)
    publishing.minute = minute


@app.timer(interval=HEARTBEAT_SECONDS)
async def heartbeat() -> None:
    """Tells the health check the streams process is alive."""
    await redis_client.set(redis_keys.process_heartbeat("streams"), time.time())
