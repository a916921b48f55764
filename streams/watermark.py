"""How current the real-time snapshots are: the moment up to which every accepted event is counted.

Events reach the snapshots through two consumer groups: the persist pump's on the events streams
(real-time counts only events ClickHouse stored, each once) and the bridge's on the entities streams.
Stream entry ids begin with the millisecond they were added, so the oldest entry either group has not
acknowledged tells when the backlog begins; with no backlog the snapshots are current as of now. The
publisher stamps this as `as_of`, so a stalled pump (ClickHouse down, no worker) shows as stale too.
"""
from __future__ import annotations

import redis.asyncio as aioredis

from models.streams import PERSIST_GROUP, REALTIME_GROUP, entities_stream_key, stream_key


def entry_seconds(entry_id: bytes | str) -> float:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0]) / 1000


async def counted_until(client: aioredis.Redis, shards: int, now: float) -> float:
    watched = [(stream_key(shard), PERSIST_GROUP) for shard in range(shards)]
    watched += [(entities_stream_key(shard), REALTIME_GROUP) for shard in range(shards)]
    async with client.pipeline(transaction=False) as pipe:
        for stream, group in watched:
            pipe.xpending(stream, group)
            pipe.xinfo_groups(stream)
        answers = await pipe.execute(raise_on_error=False)
    oldest = now
    undelivered = []
    for index, (stream, group) in enumerate(watched):
        pending, groups = answers[2 * index], answers[2 * index + 1]
        if isinstance(pending, Exception) or isinstance(groups, Exception):
            continue  # no such stream or group yet: nothing accepted there is waiting for it
        if pending["pending"]:
            oldest = min(oldest, entry_seconds(pending["min"]))
        info = next((g for g in groups if g["name"].decode() == group), None)
        if info is not None and info.get("lag") != 0:
            undelivered.append((stream, info["last-delivered-id"]))
    if undelivered:
        async with client.pipeline(transaction=False) as pipe:
            for stream, delivered in undelivered:
                pipe.xrange(stream, min=b"(" + delivered, count=1)
            for entries in await pipe.execute():
                if entries:
                    oldest = min(oldest, entry_seconds(entries[0][0]))
    return oldest
