"""The bridge from the Redis entities streams (events ClickHouse stored, each exactly once) to the
Kafka topic the aggregating agent reads, one loop per shard, with the consumer group "realtime".

A loop reads a batch of entries, groups them by company (in entry order, split by size), produces
one message per group keyed by company, waits until the broker acknowledged every one, and only then
acknowledges the entries in Redis. After any failure it starts over from its own pending entries, so
nothing is lost and a company's entries always reach the topic in order; the agent skips the ones it
applied before (see models/realtime.py). One streams process runs the bridge.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adtivity.logs import log_event
from adtivity.settings import Settings
from models.realtime import BridgeMessage, encode_message
from models.redis_streams import REALTIME_GROUP, entities_stream_key

log = logging.getLogger("streams.bridge")
MAX_BACKOFF_SECONDS = 10.0


def group_entries(entries: list[tuple[bytes, dict]], shard: int, max_bytes: int) -> list[BridgeMessage]:
    """Messages of at most `max_bytes` of payload (one entry may exceed it alone), one company each,
    keeping each company's entries in order."""
    messages: list[BridgeMessage] = []
    open_messages: dict[str, tuple[BridgeMessage, int]] = {}
    for entry_id, fields in entries:
        company = fields[b"c"].decode()
        payload = fields[b"e"]
        current = open_messages.get(company)
        if current is None or current[1] + len(payload) > max_bytes:
            message = BridgeMessage(company, shard, [])
            messages.append(message)
            current = (message, 0)
        message, size = current
        message.entries.append((entry_id.decode(), payload))
        open_messages[company] = (message, size + len(payload))
    return messages


class Bridge:
    def __init__(self, settings: Settings, client: aioredis.Redis, topic) -> None:
        self.settings = settings
        self.redis = client
        self.topic = topic

    async def run_shard(self, shard: int) -> None:
        stream = entities_stream_key(shard)
        consumer = f"{REALTIME_GROUP}-{shard}"
        backlog = True  # own pending entries first: those sent before a failure, maybe not acknowledged
        backoff = 0.5
        while True:
            try:
                if backlog:
                    await self.ensure_group(stream)
                answer = await self.redis.xreadgroup(
                    REALTIME_GROUP,
                    consumer,
                    {stream: "0" if backlog else ">"},
                    count=self.settings.realtime_read_entries,
                    block=None if backlog else 1000,
                )
                entries = answer[0][1] if answer else []
                if backlog and not entries:
                    backlog = False
                    continue
                entries = [(entry_id, fields) for entry_id, fields in entries if fields]
                await self.forward(shard, entries)
                if entries:
                    await self.redis.xack(stream, REALTIME_GROUP, *[entry_id for entry_id, _ in entries])
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis or the broker: start over from the pending entries
                log_event(
                    log,
                    "bridge interrupted; resuming from pending entries",
                    level=logging.WARNING,
                    shard=shard,
                    error=f"{type(error).__name__}: {error}",
                    retry_seconds=backoff,
                )
                backlog = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, REALTIME_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def forward(self, shard: int, entries: list[tuple[bytes, dict]]) -> None:
        """Produces the entries and returns once the broker acknowledged all of them."""
        deliveries = []
        for message in group_entries(entries, shard, self.settings.realtime_message_max_bytes):
            deliveries.append(await self.topic.send(key=message.company_id.encode(), value=encode_message(message)))
        await asyncio.gather(*deliveries)
