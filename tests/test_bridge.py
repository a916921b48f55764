"""The real-time bridge's shards among several streams processes (streams/bridge.py), on the real
Redis: the processes share the shards evenly, each shard is bridged by one of them, and when one
stops the others take its shards over and forward every entry it had not."""

from __future__ import annotations

import asyncio
import dataclasses

import redis.asyncio as aioredis

from models.realtime import decode_message
from models.redis_streams import entities_stream_key, entry_fields
from streams.bridge import Bridge

SHARDS = 4


class RecordingTopic:
    """Stands in for the Faust topic: keeps what was sent, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, key: bytes, value: bytes):
        self.sent.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def forwarded(topics: list[RecordingTopic]) -> list[str]:
    return sorted(entry for topic in topics for value in topic.sent for entry, _ in decode_message(value).entries)


async def bridging(settings, redis_client, names: list[str]) -> tuple[dict[str, Bridge], dict[str, asyncio.Task]]:
    bridges, tasks = {}, {}
    for name in names:
        bridge = Bridge(settings, aioredis.Redis.from_url(settings.redis_url), redis_client, RecordingTopic())
        bridge.holder = name  # one process here; two hosts' processes in production
        bridges[name] = bridge
        tasks[name] = asyncio.gather(*(bridge.run_shard(shard) for shard in range(SHARDS)))
    return bridges, tasks


async def until(condition, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def test_streams_processes_share_the_shards_and_take_over_a_stopped_ones(settings, redis_client):
    settings = dataclasses.replace(settings, stream_shards=SHARDS, realtime_bridge_lease_seconds=1.2)
    added = []

    def add(n: int, prefix: str) -> None:
        for i in range(n):
            shard = i % SHARDS
            fields = entry_fields(f"company-{shard}", f"{prefix}-{i}", b"\x90")
            added.append(redis_client.xadd(entities_stream_key(shard), fields).decode())

    async def scenario() -> None:
        bridges, tasks = await bridging(settings, redis_client, ["a", "b"])
        await until(lambda: len(bridges["a"].held) == len(bridges["b"].held) == 2, 15)
        assert bridges["a"].held.isdisjoint(bridges["b"].held)
        add(40, "first")
        topics = [bridge.topic for bridge in bridges.values()]
        await until(lambda: len(forwarded(topics)) == 40, 10)

        tasks["b"].cancel()  # "b" stops: its leases are released, "a" takes every shard
        await asyncio.gather(tasks["b"], return_exceptions=True)
        await until(lambda: len(bridges["a"].held) == SHARDS, 15)
        add(40, "second")
        await until(lambda: len(forwarded(topics)) >= 80, 10)
        assert set(forwarded(topics)) == set(added)

        late, late_tasks = await bridging(settings, redis_client, ["c"])  # a newcomer gets its share
        await until(lambda: len(late["c"].held) == 2 and len(bridges["a"].held) == 2, 20)
        for task in [*tasks.values(), *late_tasks.values()]:
            task.cancel()
        await asyncio.gather(*tasks.values(), *late_tasks.values(), return_exceptions=True)

    asyncio.run(scenario())
