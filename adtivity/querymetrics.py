"""Database monitoring: every Postgres and ClickHouse query timed into Prometheus by store and
statement shape, a slow-query log a store, and the connection pools' statistics.

- `timed(store, sql)` wraps one query: `adtivity_db_query_seconds{store, statement}` observes it,
  where the statement is its shape, operation and first table ("select rollup_counts"), never a
  value; a query slower than SLOW_QUERY_MS_POSTGRES / SLOW_QUERY_MS_CLICKHOUSE writes one "slow query"
  line (the statement normalised: literals and parameters replaced by ?, at most 300 characters; its
  duration; rows when known; the route or job and the request id of `origin`) and counts in
  `adtivity_db_slow_queries_total`.
- `origin` is a context variable the web (route template, request id) and the worker (actor name)
  set, so a slow query names what asked for it.
- `PoolStatistics` is a Prometheus collector over the pools a process registers (`watch_pool`):
  connections in use, idle and the maximum of each, read when scraped; `POOL_WAITS` and
  `POOL_CLOSED_FOR_AGE` count checkouts that found a pool full and connections closed for age.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from adtivity.logs import log_event
from adtivity.settings import Settings

log = logging.getLogger("adtivity.slow_queries")

QUERY_SECONDS = Histogram(
    "adtivity_db_query_seconds",
    "Time of a database query, by store and statement shape (operation and table)",
    ["store", "statement"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SLOW_QUERIES = Counter(
    "adtivity_db_slow_queries_total", "Queries slower than the store's slow-query threshold", ["store", "statement"]
)
POOL_WAITS = Counter("adtivity_db_pool_waits_total", "Checkouts that found a pool full and had to wait", ["pool"])
POOL_CLOSED_FOR_AGE = Counter(
    "adtivity_db_pool_closed_for_age_total", "Connections closed for being older than the pool's maximum age", ["pool"]
)

_OPERATION = re.compile(r"^\s*(?:/\*.*?\*/\s*)?(\w+)", re.S)
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE|JOIN)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?([`\"\w.]+)", re.I)
_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'|%\(\w+\)s|%s|\b\d+(?:\.\d+)?\b")
_LISTS = re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)")
MAX_STATEMENT_CHARS = 300


@dataclass(frozen=True)
class Origin:
    """What asked for the queries: a route template or a job's name, and a request id when there is one."""

    caller: str = ""
    request_id: str = ""


origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("query_origin", default=None)


def shape(sql: str) -> str:
    """A statement's operation and first table, lower-cased: a label of bounded cardinality."""
    operation = _OPERATION.match(sql)
    table = _TABLE.search(sql)
    words = [
        operation[1].lower() if operation else "?",
        table[1].replace("`", "").replace('"', "").lower() if table else "",
    ]
    return " ".join(word for word in words if word)


def normalised(sql: str) -> str:
    """The statement with its literals and parameters as ?, lists of them folded, space squeezed."""
    text = _LISTS.sub("(?)", _LITERAL.sub("?", sql))
    return " ".join(text.split())[:MAX_STATEMENT_CHARS]


@dataclass
class SlowQueryLog:
    """The thresholds, in milliseconds, a store (0 turns a store's log off)."""

    thresholds_ms: dict[str, int] = field(default_factory=dict)


slow_query_log = SlowQueryLog()


def configure(settings: Settings) -> None:
    """Sets the slow-query thresholds (each process at start)."""
    slow_query_log.thresholds_ms = {
        "postgres": settings.slow_query_ms_postgres,
        "clickhouse": settings.slow_query_ms_clickhouse,
    }


@contextmanager
def timed(store: str, sql: str) -> Iterator[dict[str, Any]]:
    """Times the query run inside; the caller may set `rows` in the yielded dict."""
    noted: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield noted
    finally:
        seconds = time.perf_counter() - started
        statement = shape(sql)
        QUERY_SECONDS.labels(store, statement).observe(seconds)
        threshold = slow_query_log.thresholds_ms.get(store, 0)
        if threshold and seconds * 1000 >= threshold:
            SLOW_QUERIES.labels(store, statement).inc()
            asked = origin.get() or Origin()
            log_event(
                log,
                "slow query",
                level=logging.WARNING,
                store=store,
                statement=normalised(sql),
                ms=round(seconds * 1000, 1),
                rows=noted.get("rows"),
                caller=asked.caller,
                request_id=asked.request_id,
            )


@dataclass
class WatchedPool:
    """A pool's figures: `counts` reads its connections (in use, idle); `waited` and
    `closed_for_age` are told."""

    name: str
    store: str
    counts: Callable[[], tuple[int, int]]
    maximum: int
    waits: int = 0
    closed: int = 0

    def waited(self) -> None:
        self.waits += 1
        POOL_WAITS.labels(self.name).inc()

    def closed_for_age(self) -> None:
        self.closed += 1
        POOL_CLOSED_FOR_AGE.labels(self.name).inc()


class PoolStatistics:
    """Prometheus collector of the registered pools, read when scraped (and by /v1/system/status)."""

    def __init__(self) -> None:
        self.pools: dict[str, WatchedPool] = {}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        figures = {}
        for pool in list(self.pools.values()):
            in_use, idle = pool.counts()
            figures[pool.name] = {
                "store": pool.store,
                "in_use": in_use,
                "idle": idle,
                "max": pool.maximum,
                "waits": pool.waits,
                "closed_for_age": pool.closed,
            }
        return figures

    def collect(self):
        labels = ["pool", "store"]
        families = {
            kind: GaugeMetricFamily(
                f"adtivity_db_pool_{kind}_connections", f"Connections of a pool: {kind}", labels=labels
            )
            for kind in ("in_use", "idle", "max")
        }
        for name, figures in self.snapshot().items():
            for kind, family in families.items():
                family.add_metric([name, figures["store"]], figures[kind])
        yield from families.values()


pool_statistics = PoolStatistics()
_registered: list[PoolStatistics] = []


def watch_pool(pool: WatchedPool) -> WatchedPool:
    """Adds a pool to the statistics (the collector joins Prometheus's registry on the first one); a
    pool of the same name replaces the one before."""
    if not _registered:
        REGISTRY.register(pool_statistics)
        _registered.append(pool_statistics)
    pool_statistics.pools[pool.name] = pool
    return pool


def watch_redis(name: str, client: Any) -> None:
    """A Redis client's connection pools (one a node of a Redis Cluster), as one pool."""

    def counts() -> tuple[int, int]:
        pools = (
            [node.redis_connection.connection_pool for node in client.get_nodes() if node.redis_connection]
            if hasattr(client, "get_nodes")
            else [client.connection_pool]
        )
        idle = used = 0
        for pool in pools:
            for count, attributes in pool.get_connection_count():
                if str(attributes.get("db.client.connection.state")) == "idle":
                    idle += count
                else:
                    used += count
        return used, idle

    maximum = getattr(getattr(client, "connection_pool", None), "max_connections", 0) or 0
    maximum = 0 if maximum >= 2**31 - 1 else maximum  # redis-py's default: no limit
    watch_pool(WatchedPool(name, "redis", counts, maximum))
