"""Migration runners for Postgres and ClickHouse: numbered SQL files, applied once, in order.

Files live in models/migrations/{postgres,clickhouse}/NNNN_name.sql. Applied versions are recorded in
a `schema_migrations` table in each store, so running again applies nothing. Postgres migrations run
in one transaction each, under an advisory lock so concurrent runners wait for each other.
ClickHouse has no transactions: its files use IF NOT EXISTS (and a column added is not added again), so
a run cut short can simply be repeated.
Its files are written for one server; on a cluster each statement runs in its cluster form
(models/clickhouse_cluster.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import peewee
from clickhouse_connect.driver.client import Client

from adtivity.logs import log_event
from models.clickhouse_cluster import Layout

MIGRATIONS = Path(__file__).parent / "migrations"
POSTGRES_LOCK_ID = 7_140_001
log = logging.getLogger(__name__)


def migration_files(store: str) -> list[tuple[str, Path]]:
    return [(path.stem, path) for path in sorted((MIGRATIONS / store).glob("[0-9][0-9][0-9][0-9]_*.sql"))]


def sql_statements(path: Path) -> list[str]:
    """The statements of a file: split on ';' at line ends, with '--' comment lines dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.strip().startswith("--")]
    statements = (statement.strip().rstrip(";").strip() for statement in "\n".join(lines).split(";\n"))
    return [statement for statement in statements if statement]


def migrate_postgres(db: peewee.Database) -> list[str]:
    """Applies pending Postgres migrations; returns the versions applied now."""
    applied_now = []
    with db.connection_context():
        db.execute_sql("SELECT pg_advisory_lock(%s)", (POSTGRES_LOCK_ID,))
        try:
            db.execute_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamp NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}
            for version, path in migration_files("postgres"):
                if version in applied:
                    continue
                with db.atomic():
                    for statement in sql_statements(path):
                        db.execute_sql(statement)
                    db.execute_sql("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
                log_event(log, "migration applied", store="postgres", version=version)
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (POSTGRES_LOCK_ID,))
    return applied_now


def migrate_clickhouse(client: Client, layout: Layout | None = None) -> list[str]:
    """Applies pending ClickHouse migrations to the client's database (which must exist, on every
    node of a cluster); `layout` says whether that is one server (the default) or a cluster."""
    layout = layout or Layout(database=client.database or "default")
    client.command(layout.migrations_table())
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    applied_now = []
    for version, path in migration_files("clickhouse"):
        if version in applied:
            continue
        for statement in sql_statements(path):
            for form in layout.statements(statement):
                if not layout.already_applied(client, form):
                    client.command(form, settings=layout.insert_settings)
        client.insert("schema_migrations", [[version]], column_names=["version"], column_type_names=["String"])
        applied_now.append(version)
        log_event(log, "migration applied", store="clickhouse", version=version)
    return applied_now
