"""The Faust app, its topic, table, agent, bridge and publisher, declared top to bottom.

Data flow: the bridge (streams/bridge.py) moves stored events from the Redis entities streams to the
`<app id>-events` topic, one message per company and batch; the `aggregate_events` agent applies each
message to the company's minute and day buckets in the changelogged `buckets` table (recovered on
restart), each changed bucket written once per message; every REALTIME_PUBLISH_SECONDS the publisher
turns buckets into one snapshot per company in Redis and stamps REALTIME_AS_OF with the moment up to
which every accepted event is counted (models.redis_streams.backlog_since), which the web API reads
(models/realtime.py has the bucket logic).

Broker settings (measured against Tansu, the broker dev and CI run): short session/rebalance timeouts and heartbeats (Tansu holds a
group join for half the session timeout), earliest offsets, the replication factor as a setting (1 on
one broker; 3 on a production cluster of 3), no web server (nothing
listens), and the producer batch size as a setting (1 works around a Tansu bug; real Kafka needs none).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import faust
import msgspec

from adtivity.errortracking import init_error_tracking
from adtivity.logs import log_event, log_handler
from adtivity.metrics import REALTIME_MESSAGES, REALTIME_SECONDS_BEHIND, serve
from adtivity.settings import Settings
from models import realtime, redis_keys
from models.redis_client import UNAVAILABLE, async_redis_client
from models.redis_client import redis_client as blocking_redis_client
from models.redis_streams import backlog_since, realtime_watch
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
        topic_replication_factor=settings.kafka_replication_factor,
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
init_error_tracking(settings, process="streams")
app = create_app(settings)
redis_client = async_redis_client(settings, timeout=5)  # connects lazily
sync_redis = blocking_redis_client(settings, timeout=5)  # for the watermark, run in a thread
events_topic = app.topic(
    f"{settings.streams_app_id}-events", key_type=bytes, value_type=bytes, partitions=settings.realtime_partitions
)
buckets = app.Table("buckets", default=None, key_type=bytes, value_type=bytes, partitions=settings.realtime_partitions)


class Publishing:
    """What the agent and the publisher share: each company's bucket keys (kept by the agent, rebuilt
    from the table when a minute begins or after a rebalance), the companies whose buckets changed,
    and the expired keys the publisher found, for the agent to delete (only an agent may write the
    table)."""

    def __init__(self) -> None:
        self.keys: dict[str, set[bytes]] = {}
        self.changed: set[str] = set()
        self.expired: dict[str, list[bytes]] = {}
        self.minute = -1

    def rebuild(self, table_keys) -> None:
        self.keys = {}
        for key in table_keys:
            self.keys.setdefault(realtime.parse_key(key)[0], set()).add(key)


publishing = Publishing()


@app.task
async def announce_ready() -> None:
    serve(settings, settings.streams_metrics_port, "streams")
    log_event(log, "ready", pid=os.getpid(), broker=settings.kafka_bootstrap)


@app.task
async def bridge_streams() -> None:
    bridge = Bridge(settings, redis_client, sync_redis, events_topic)
    await asyncio.gather(*(bridge.run_shard(shard) for shard in range(settings.stream_shards)))


@app.agent(events_topic)
async def aggregate_events(stream) -> None:
    async for event in stream.events():
        try:
            message = realtime.decode_message(event.value)
            changed = realtime.apply_message(
                message,
                buckets.get,
                now=time.time(),
                lg_k=settings.realtime_hll_lg_k,
                max_keys=settings.realtime_max_keys,
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
            log_event(
                log,
                "undecodable real-time message skipped",
                level=logging.ERROR,
                error=str(error),
                partition=event.message.partition,
                offset=event.message.offset,
            )
            continue
        keys = publishing.keys.setdefault(message.company_id, set())
        for key, bucket in changed.items():
            buckets[key] = realtime.encode_bucket(bucket)
            keys.add(key)
        for key in publishing.expired.pop(message.company_id, ()):
            if key in buckets:
                del buckets[key]
            keys.discard(key)
        if changed:
            publishing.changed.add(message.company_id)
        REALTIME_MESSAGES.inc()


@app.timer(interval=settings.realtime_publish_seconds)
async def publish_snapshots() -> None:
    """Snapshots of the companies whose buckets changed (of every company when a minute begins, as
    the windows move), then the as-of stamp. Nothing while partitions are being assigned or recovered."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        publishing.minute = -1  # the table's partitions may change: rebuild the key index afterwards
        return
    now = time.time()
    minute = int(now // 60)
    changed, publishing.changed = publishing.changed, set()
    if minute != publishing.minute:
        publishing.rebuild(list(buckets.keys()))
        due = set(publishing.keys)
    else:
        due = changed
    try:
        as_of = await asyncio.to_thread(backlog_since, sync_redis, realtime_watch(settings.stream_shards), now)
        async with redis_client.pipeline(transaction=False) as pipe:
            for company_id in due:
                view = company_snapshot(company_id, now)
                if view is None:
                    pipe.delete(redis_keys.realtime_snapshot(company_id))
                else:
                    pipe.set(redis_keys.realtime_snapshot(company_id), _json.encode(view), ex=SNAPSHOT_TTL_SECONDS)
            pipe.set(redis_keys.REALTIME_AS_OF, as_of)
            REALTIME_SECONDS_BEHIND.set(now - as_of)
            await pipe.execute()
    except UNAVAILABLE as error:  # publish them at a later tick; the snapshots' as-of tells readers meanwhile
        publishing.changed |= due
        log_event(log, "could not publish snapshots; will retry", level=logging.WARNING, error=type(error).__name__)
        return
    publishing.minute = minute


def company_snapshot(company_id: str, now: float) -> dict | None:
    """The company's snapshot from its live buckets (None when it has none); notes its expired ones."""
    minutes: dict[int, realtime.Bucket] = {}
    today = None
    expired = []
    for key in publishing.keys.get(company_id, ()):
        _, kind, number = realtime.parse_key(key)
        value = buckets.get(key)
        if value is None:
            continue
        if realtime.is_expired(kind, number, now):
            expired.append(key)
        elif kind == "m":
            minutes[number] = realtime.decode_bucket(value)
        else:
            today = realtime.decode_bucket(value)
    if expired:
        publishing.expired[company_id] = expired
    if not minutes and today is None:
        return None
    return realtime.snapshot(minutes, today, now=now, lg_k=settings.realtime_hll_lg_k)


@app.timer(interval=HEARTBEAT_SECONDS)
async def heartbeat() -> None:
    """Tells the health check the streams process is alive."""
    try:
        await redis_client.set(redis_keys.process_heartbeat("streams"), time.time())
    except UNAVAILABLE as error:
        log_event(log, "could not write the heartbeat; will retry", level=logging.WARNING, error=type(error).__name__)
