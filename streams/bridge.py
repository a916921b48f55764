"""The bridge from the Redis entities streams (events ClickHouse stored, each exactly once) to the
Kafka topic the aggregating agent reads, one loop per shard, with the consumer group "realtime".

A loop reads a batch of entries, groups them by company (in entry order, split by size), produces
one message per group keyed by company, waits until the broker acknowledged every one, and only then
acknowledges the entries in Redis. After any failure it starts over from its own pending entries, so
nothing is lost and a company's entries always reach the topic in order; the agent skips the ones it
applied before (see models/realtime.py).

Several streams processes share the shards: each shard's loop runs only while its process holds the
shard's lease (`redis_keys.pump_lease("realtime", shard)`, renewed at every batch, lost after
REALTIME_BRIDGE_LEASE_SECONDS without renewal), so a shard is bridged by one process at a time and
another takes it over when that one dies. Every process reads a shard as the same consumer, so the
one taking over starts from the entries its predecessor had read but not acknowledged. The processes
share the shards evenly: each notes itself in `redis_keys.BRIDGES` as it renews, takes a lease only
while it holds fewer than its share (the shards over the live processes, rounded up), and gives up
its highest shard while it holds more (so a process that joins gets shards).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adtivity.lease import Lease
from adtivity.logs import log_event
from adtivity.settings import Settings
from models import redis_keys
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
    """`client` (asyncio) moves the entries; `lease_client` (blocking, called in a thread) holds the leases."""

    def __init__(self, settings: Settings, client: aioredis.Redis, lease_client, topic) -> None:
        self.settings = settings
        self.redis = client
        self.lease_client = lease_client
        self.topic = topic
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.held: set[int] = set()

    def fair_share(self) -> int:
        """Notes this process as live and returns how many shards it should bridge (blocking)."""
        now = time.time()
        ttl = self.settings.realtime_bridge_lease_seconds
        with self.lease_client.pipeline(transaction=False) as pipe:
            pipe.zadd(redis_keys.BRIDGES, {self.holder: now})
            pipe.zremrangebyscore(redis_keys.BRIDGES, "-inf", now - ttl)
            pipe.zcard(redis_keys.BRIDGES)
            live = pipe.execute()[-1]
        return -(-self.settings.stream_shards // max(live, 1))

    async def run_shard(self, shard: int) -> None:
        """Bridges the shard whenever this process holds its lease; otherwise waits for it."""
        ttl = self.settings.realtime_bridge_lease_seconds
        lease = Lease(self.lease_client, redis_keys.pump_lease("realtime", shard), ttl_seconds=ttl, holder=self.holder)
        while True:
            try:
                held = len(self.held) < await asyncio.to_thread(self.fair_share) and await asyncio.to_thread(
                    lease.acquire
                )
            except Exception as error:  # Redis: try again
                log_event(
                    log, "bridge lease unavailable", level=logging.WARNING, shard=shard, error=type(error).__name__
                )
                held = False
            if not held:
                await asyncio.sleep(ttl / 3)
                continue
            log_event(log, "bridging shard", shard=shard, holder=self.holder)
            self.held.add(shard)
            try:
                await self.bridge_shard(shard, lease)
            finally:
                self.held.discard(shard)
                await asyncio.to_thread(_release_quietly, lease)
            log_event(log, "bridge lease given up", shard=shard, holder=self.holder)
            await asyncio.sleep(ttl)  # a process below its share takes it meanwhile

    async def bridge_shard(self, shard: int, lease: Lease) -> None:
        """Moves the shard's entries until the lease is lost (or cannot be renewed in time), or this
        process holds more than its share and this is its highest shard."""
        stream = entities_stream_key(shard)
        consumer = f"{REALTIME_GROUP}-{shard}"
        backlog = True  # own pending entries first: those sent before a failure, maybe not acknowledged
        backoff = 0.5
        renew_every = self.settings.realtime_bridge_lease_seconds / 3
        renewed = time.monotonic()
        while True:
            if time.monotonic() - renewed >= renew_every:
                try:
                    still_held = await asyncio.to_thread(lease.renew)
                    over_share = len(self.held) > await asyncio.to_thread(self.fair_share)
                except Exception:  # Redis down: keep trying while the lease may still be ours
                    still_held, over_share = time.monotonic() - renewed < 2 * renew_every, False
                else:
                    renewed = time.monotonic() if still_held else renewed
                if not still_held or (over_share and shard == max(self.held)):
                    return
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


def _release_quietly(lease: Lease) -> None:
    try:
        lease.release()
    except Exception:  # Redis down: the lease expires by itself
        pass
