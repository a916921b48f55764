"""The Postgres connection: one DatabaseProxy every model is declared against, bound at start-up."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2
from playhouse.db_url import connect
from psycopg2 import sql

database = peewee.DatabaseProxy()


_bound_url: str | None = None


def open_database(url: str, *, connect_timeout: int = 3, max_connections: int = 20) -> peewee.Database:
    """Binds the proxy to a pooled database at `url` and returns it; bound to that URL already, it
    returns the same pool (so one process never holds two pools of one database). Connections open
    lazily, one per thread; close() hands one back to the pool instead of tearing it down."""
    global _bound_url
    if database.obj is not None and _bound_url == url:
        return cast(peewee.Database, database.obj)
    scheme, _, rest = url.partition("://")
    pooled_url = f"{scheme.split('+')[0]}+pool://{rest}"
    db = connect(
        pooled_url, connect_timeout=connect_timeout, max_connections=max_connections, stale_timeout=300, timeout=10
    )
    database.initialize(db)
    _bound_url = url
    return cast(peewee.Database, db)


def utcnow() -> dt.datetime:
    """Naive UTC, as every timestamp column stores it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


__all__ = ["BaseModel", "database", "new_id", "open_database", "utcnow"]


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
