"""The Postgres connections: one DatabaseProxy every model is declared against, bound at start-up to
the primary, and one for the analytics API's reads of the rollups, bound to DATABASE_READ_URL (a
streaming replica) when it is set, else to the primary's pool too."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2
from playhouse.db_url import parse
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase
from psycopg2 import sql

from adtivity.querymetrics import WatchedPool, timed, watch_pool

database = peewee.DatabaseProxy()
read_database = peewee.DatabaseProxy()

_bound_urls: dict[int, str] = {}
MAX_CONNECTION_AGE_SECONDS = 300


class MonitoredPostgres(PooledPostgresqlDatabase):  # type: ignore[misc]  # peewee's pool is untyped
    """A pooled Postgres whose queries are timed (adtivity/querymetrics.py) and whose pool reports its
    connections in use and idle, the checkouts that found it full and the connections it closed for
    being older than its maximum age (`stale_timeout`)."""

    def __init__(self, *args: Any, pool_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watched = watch_pool(
            WatchedPool(
                pool_name, "postgres", lambda: (len(self._in_use), len(self._connections)), self._max_connections
            )
        )

    def execute_sql(self, sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        with timed("postgres", sql) as noted:
            cursor = super().execute_sql(sql, params, *args, **kwargs)
            noted["rows"] = cursor.rowcount
            return cursor

    def _connect(self) -> Any:
        try:
            return super()._connect()
        except MaxConnectionsExceeded:
            self.watched.waited()
            raise

    def _is_stale(self, timestamp: float) -> bool:
        stale = bool(super()._is_stale(timestamp))
        if stale:
            self.watched.closed_for_age()
        return stale


def _bind(
    proxy: peewee.DatabaseProxy, url: str, connect_timeout: int, max_connections: int, max_age: int, pool_name: str
) -> peewee.Database:
    if proxy.obj is not None and _bound_urls.get(id(proxy)) == url:
        return cast(peewee.Database, proxy.obj)
    db = MonitoredPostgres(
        **parse(url),
        pool_name=pool_name,
        connect_timeout=connect_timeout,
        max_connections=max_connections,
        stale_timeout=max_age,
        timeout=10,
    )
    proxy.initialize(db)
    _bound_urls[id(proxy)] = url
    return db


def open_database(
    url: str, *, connect_timeout: int = 3, max_connections: int = 20, max_age: int = MAX_CONNECTION_AGE_SECONDS
) -> peewee.Database:
    """Binds the proxy to a pooled database at `url` and returns it; bound to that URL already, it
    returns the same pool (so one process never holds two pools of one database). Connections open
    lazily, one per thread; close() hands one back to the pool instead of tearing it down; one older
    than `max_age` seconds is closed instead of being lent again."""
    return _bind(database, url, connect_timeout, max_connections, max_age, "postgres")


def open_read_database(
    url: str, *, connect_timeout: int = 3, max_connections: int = 20, max_age: int = MAX_CONNECTION_AGE_SECONDS
) -> peewee.Database:
    """Binds `read_database` to a pool at `url` (a replica), or, with `url` empty, to the primary's
    pool (open_database first)."""
    if not url:
        read_database.initialize(database.obj)
        _bound_urls.pop(id(read_database), None)
        return cast(peewee.Database, database.obj)
    return _bind(read_database, url, connect_timeout, max_connections, max_age, "postgres-read")


def utcnow() -> dt.datetime:
    """Naive UTC, as every timestamp column stores it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


__all__ = ["BaseModel", "database", "new_id", "open_database", "open_read_database", "read_database", "utcnow"]


def ensure_database_exists(url: str) -> bool:
    """Creates the Postgres database named in `url` when it is missing; True if it was created."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance_url = urlunsplit(parts._replace(path="/postgres"))
    connection = psycopg2.connect(maintenance_url, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        connection.close()
