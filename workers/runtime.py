"""What the actors of a worker process share: its settings, its broker, and clients of the stores,
made on first use. workers/main.py builds it and installs it; nothing is built on import."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import dramatiq
import redis

from adtivity.jobs import Jobs
from adtivity.querymetrics import watch_redis
from adtivity.settings import Settings
from dedup.filter import ShardFilter
from models.clickhouse import PerThread
from models.redis_client import redis_client


@dataclass
class Runtime:
    settings: Settings
    broker: dramatiq.Broker
    _clients: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def redis(self, timeout: float) -> redis.Redis:
        """A Redis client (thread-safe, pooled) whose calls time out after `timeout` seconds."""
        return self._client(("redis", timeout), lambda: self._watched_redis(timeout))

    def _watched_redis(self, timeout: float):
        client = redis_client(self.settings, timeout=timeout)
        watch_redis(f"redis-{timeout:g}s", client)
        return client

    def clickhouse(self, timeout: float) -> PerThread:
        """ClickHouse clients, one per thread, whose queries time out after `timeout` seconds."""
        return self._client(("clickhouse", timeout), lambda: PerThread(self.settings.clickhouse_url, timeout=timeout))

    def dedup_filter(self, shard: int) -> ShardFilter:
        """The shard's de-duplication filter, kept by this process between pumps (its generations
        stay in memory; each pump only catches up on what the journal gained)."""
        client = self.redis(30)  # made first: _client holds its lock while it makes what it is asked for
        return self._client(("dedup", shard), lambda: ShardFilter(self.settings, client, shard))

    def enqueue(self, actor_name: str, *args) -> None:
        Jobs(self.broker).enqueue(actor_name, *args)

    def _client(self, key: tuple, make):
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]


_installed: list[Runtime] = []


def install(runtime: Runtime) -> None:
    _installed[:] = [runtime]


def current() -> Runtime:
    """The installed runtime; an actor runs only in a process that workers/main.py set up."""
    if not _installed:
        raise RuntimeError("the worker runtime is not set up: start workers through workers.main:set_up")
    return _installed[0]
