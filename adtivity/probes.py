"""Dependency probes: is each store answering, and how fast. Used by /ready and the scheduler's
health check. Each probe opens its own short-lived connection with a hard timeout, so a dead store
makes a probe fail fast instead of hanging a request, and no pool state is disturbed."""

from __future__ import annotations

import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from adtivity.settings import Settings
from models.redis_client import redis_client

# Required: without these the API cannot serve. The broker only feeds real-time metrics, which say when they are stale.
REQUIRED = ("postgres", "redis", "clickhouse")


@dataclass(frozen=True)
class ProbeResult:
    name: str
    up: bool
    required: bool
    latency_ms: float
    error: str | None = None


def probe_postgres(settings: Settings, timeout: float) -> None:
    connection = psycopg2.connect(settings.database_url, connect_timeout=max(1, round(timeout)))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def probe_redis(settings: Settings, timeout: float) -> None:
    client = redis_client(settings, timeout=timeout, connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def probe_clickhouse(settings: Settings, timeout: float) -> None:
    parts = urlsplit(settings.clickhouse_url)
    ping = urlunsplit(("http", f"{parts.hostname}:{parts.port or 8123}", "/ping", "", ""))
    with urllib.request.urlopen(ping, timeout=timeout) as answer:
        if answer.read().strip() != b"Ok.":
            raise ConnectionError("unexpected /ping answer")


def probe_broker(settings: Settings, timeout: float) -> None:
    host, _, port = settings.kafka_bootstrap.rpartition(":")
    socket.create_connection((host, int(port)), timeout=timeout).close()


PROBES = {"postgres": probe_postgres, "redis": probe_redis, "clickhouse": probe_clickhouse, "broker": probe_broker}


def _run(name: str, settings: Settings) -> ProbeResult:
    started = time.perf_counter()
    try:
        PROBES[name](settings, settings.probe_timeout_seconds)
        error = None
    except Exception as failure:  # any failure means "down"; the type is enough to say why
        error = type(failure).__name__
    latency = round((time.perf_counter() - started) * 1000, 2)
    return ProbeResult(name, error is None, name in REQUIRED, latency, error)


def probe_all(settings: Settings) -> list[ProbeResult]:
    """Every probe at once; the whole call takes about the slowest probe, at most the timeout."""
    with ThreadPoolExecutor(max_workers=len(PROBES)) as pool:
        return list(pool.map(lambda name: _run(name, settings), PROBES))
