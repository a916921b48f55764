"""Migration runners: applied once, in order, recorded; the schema is what the models expect."""

from __future__ import annotations

from adtivity.cli import run_migrations
from models.accounts import ALL_MODELS
from models.clickhouse import clickhouse_client
from models.db import database
from models.migrate import migration_files, sql_statements


def test_running_migrations_again_applies_nothing(settings):
    assert run_migrations(settings) == {"postgres": [], "clickhouse": []}
    with database.connection_context():
        recorded = [row[0] for row in database.execute_sql("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [version for version, _ in migration_files("postgres")]
    ch_recorded = clickhouse_client(settings.clickhouse_url).query(
        "SELECT version FROM schema_migrations ORDER BY version"
    )
    assert [row[0] for row in ch_recorded.result_rows] == [version for version, _ in migration_files("clickhouse")]


def test_every_model_column_exists_in_the_migrated_schema():
    with database.connection_context():
        for model in ALL_MODELS:
            columns = {c.name for c in database.get_columns(model._meta.table_name)}
            assert {f.column_name for f in model._meta.sorted_fields} <= columns, model.__name__


def test_events_table_is_partitioned_by_month_and_ordered_by_company_and_time(settings):
    client = clickhouse_client(settings.clickhouse_url)
    row = client.query(
        "SELECT partition_key, sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'events'"
    ).result_rows[0]
    assert row[0] == "toYYYYMM(event_time)"
    assert row[1].startswith("company_id, event_time")


def test_sql_files_are_split_into_statements(tmp_path):
    path = tmp_path / "0001_x.sql"
    path.write_text("-- a comment; with a semicolon\nCREATE TABLE a (x int);\n\nCREATE INDEX b ON a (x);\n")
    assert sql_statements(path) == ["CREATE TABLE a (x int)", "CREATE INDEX b ON a (x)"]


def test_every_event_field_has_its_events_column(settings):
    """Rows are inserted as JSONEachRow with unknown fields skipped, so a field without a column would
    be dropped silently: the two lists must match."""
    from models.events import Event

    client = clickhouse_client(settings.clickhouse_url)
    columns = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events'"
        ).result_rows
    }
    assert columns == set(Event.__struct_fields__) | {"tx_value_num", "stream_entry"}
