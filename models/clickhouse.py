"""ClickHouse clients, built from CLICKHOUSE_URL (http://user:password@host:port/database).

`chdb:///data/directory/database` is ClickHouse in this process instead (chDB, a current release,
installed for the tests only): one process a data directory, so it serves the tests of the
ClickHouse layer as a second engine, never the processes of the system.

clickhouse-connect is pinned to 1.6.0 and used with compress=False so the same code runs on the
ClickHouse 18.16 found on these machines and on current releases. A client serves one query at a
time: the workers hold one per thread (`PerThread`), the web's greenlets borrow one (`ClientPool`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.external import ExternalData
from clickhouse_connect.driver.httpclient import HttpClient

from adtivity.querymetrics import WatchedPool, timed, watch_pool


def database_name(url: str) -> str:
    return urlsplit(url).path.strip("/").rsplit("/", 1)[-1] or "default"


def clickhouse_client(url: str, *, database: str | None = None, timeout: float = 10.0) -> Client:
    """A client for the database in `url` (or `database`, e.g. "default" before it exists)."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        directory = parts.path.rstrip("/").rsplit("/", 1)[0]
        return timed_client(
            clickhouse_connect.get_client(interface="chdb", path=directory, database=database or database_name(url))
        )
    return timed_client(
        clickhouse_connect.get_client(
            host=parts.hostname,
            port=parts.port or 8123,
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=database or database_name(url),
            compress=False,
            connect_timeout=timeout,
            send_receive_timeout=timeout,
        )
    )


# The client's methods that run a statement: the argument that holds its SQL (or, for an insert, its
# table), and whether it inserts.
_STATEMENTS = {
    "query": ("query", False),
    "command": ("cmd", False),
    "query_column_block_stream": ("query", False),
    "insert": ("table", True),
    "raw_insert": ("table", True),
}


def _statement(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, insert: bool) -> str:
    first = args[0] if args else kwargs.get(name, "")
    return f"INSERT INTO {first}" if insert else first


def timed_client(client: Client) -> Client:
    """The client, each of its statements timed (adtivity/querymetrics.py): the query, or for a
    stream the time to its first block."""
    for method, (argument, insert) in _STATEMENTS.items():
        original = getattr(client, method)

        def run(
            *args: Any, _original: Any = original, _argument: str = argument, _insert: bool = insert, **kwargs: Any
        ) -> Any:
            with timed("clickhouse", _statement(args, kwargs, _argument, _insert)) as noted:
                result = _original(*args, **kwargs)
                noted["rows"] = getattr(result, "row_count", None)
                return result

        setattr(client, method, run)
    return client


def tab_separated(values: Iterable[str]) -> bytes:
    """One value a line in ClickHouse's TabSeparated format (backslash, tab and newline escaped)."""
    escaped = (v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") for v in values)
    return ("\n".join(escaped) + "\n").encode()


def string_set(client: Client, name: str, values: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """A set of strings for `x IN <set>`: what the query names it, and the query's arguments that
    carry it. To a server, a table sent beside the query (external data: any size, no parsing of a
    literal); to chDB, which takes no external data, a bound tuple."""
    if isinstance(client, HttpClient):
        table = ExternalData(file_name=name, data=tab_separated(values), fmt="TabSeparated", structure=["v String"])
        return name, {"external_data": table}
    return f"%({name})s", {"parameters": {name: tuple(values)}}


class PerThread:
    """Hands each thread its own client to the same database, made on first use."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()

    def get(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = clickhouse_client(self.url, timeout=self.timeout)
        return client


class PoolExhausted(Exception):
    """Every client of a `ClientPool` stayed busy for as long as a borrower would wait."""


class ClientPool:
    """At most `size` clients to one database, for a process that serves many requests at once (the
    web's gevent workers, where a thread-local would mean a client per connection): a query borrows
    an idle client, or makes one while fewer than `size` exist, and gives it back. With all of them
    busy, a borrower waits up to `wait` seconds, then gets PoolExhausted."""

    def __init__(self, url: str, *, size: int, wait: float, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.wait = wait
        self._idle: list[Client] = []
        self._lent = 0
        self._free = threading.BoundedSemaphore(size)
        self.watched = watch_pool(WatchedPool("clickhouse", "clickhouse", lambda: (self._lent, len(self._idle)), size))

    @contextmanager
    def client(self) -> Iterator[Client]:
        if not self._free.acquire(blocking=False):
            self.watched.waited()
            if not self._free.acquire(timeout=self.wait):
                raise PoolExhausted(f"all ClickHouse clients busy for {self.wait} s")
        try:
            client = self._idle.pop() if self._idle else clickhouse_client(self.url, timeout=self.timeout)
            self._lent += 1
            try:
                yield client
            finally:
                self._lent -= 1
                self._idle.append(client)
        finally:
            self._free.release()
