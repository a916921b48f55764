"""Migration runners: applied once, in order, recorded; the schema is what the models expect."""

from __future__ import annotations

from adtivity.cli import run_migrations
from models import redis_keys
from models.accounts import ALL_MODELS
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database
from models.migrate import migration_files, sql_statements
from models.redis_streams import ENTITIES_GROUP, PERSIST_GROUP, entities_stream_key, stream_key
from tests.ingest_helpers import tenant
from tests.pipeline_helpers import drain, send


def test_running_migrations_again_applies_nothing(settings):
    assert run_migrations(settings) == {"postgres": [], "clickhouse": [], "redis": []}
    with database.connection_context():
        recorded = [row[0] for row in database.execute_sql("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [version for version, _ in migration_files("postgres")]
    ch_recorded = clickhouse_client(settings.clickhouse_url).query(
        "SELECT version FROM schema_migrations ORDER BY version"
    )
    assert [row[0] for row in ch_recorded.result_rows] == [version for version, _ in migration_files("clickhouse")]


def test_migrating_renames_stream_keys_written_before_their_hash_tags(settings, redis_client):
    redis_client.xadd("adt:ev:2", {"e": "x"})
    redis_client.xgroup_create("adt:ev:2", PERSIST_GROUP, id="0")
    redis_client.xreadgroup(PERSIST_GROUP, "pump", {"adt:ev:2": ">"})
    redis_client.sadd("adt:handed:2", "1-1")
    redis_client.hset("adt:failures:adt:ent:2:entities", "1-1", 3)
    redis_client.xadd("adt:ent:0", {"e": "old"})
    redis_client.xadd(entities_stream_key(0), {"e": "new"})  # both names: the new one is kept as it is

    assert run_migrations(settings)["redis"] == ["adt:ev:2", "adt:failures:adt:ent:2:entities", "adt:handed:2"]

    assert redis_client.xpending(stream_key(2), PERSIST_GROUP)["pending"] == 1
    assert redis_client.smembers(redis_keys.handed_over(2)) == {b"1-1"}
    assert redis_client.hget(redis_keys.pump_failures(entities_stream_key(2), ENTITIES_GROUP), "1-1") == b"3"
    assert [fields for _, fields in redis_client.xrange(entities_stream_key(0))] == [{b"e": b"new"}]
    assert redis_client.exists("adt:ent:0")


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
    from models.events_table import EVENT_COLUMNS

    client = clickhouse_client(settings.clickhouse_url)
    columns = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events'"
        ).result_rows
    }
    assert columns == set(EVENT_COLUMNS) | {"person"}


def test_person_is_the_hash_of_the_user_id_else_the_anonymous_id_and_0_for_none(api, settings, redis_client):
    """ClickHouse computes it for every event the workers store (they leave the column out), and for
    any insert that leaves it out."""
    t = tenant(api)
    people = [("u1", "a1"), ("", "a2"), ("u3", "")]
    send(
        api,
        t.write_key,
        [
            {"type": "track", "name": "Seen", "message_id": f"m{i}", "user_id": user, "anonymous_id": anonymous}
            for i, (user, anonymous) in enumerate(people)
        ],
    )
    drain(settings, redis_client)
    rows = (
        clickhouse_client(settings.clickhouse_url)
        .query(
            "SELECT person, cityHash64(if(user_id != '', user_id, anonymous_id)) FROM events "
            "WHERE company_id = toUUID(%(c)s) ORDER BY message_id",
            parameters={"c": t.company_id},
        )
        .result_rows
    )
    assert len(rows) == 3 and all(person == expected for person, expected in rows)
    client = clickhouse_client(settings.clickhouse_url)
    client.insert(
        "events",
        [[t.company_id, "nobody"]],
        column_names=["company_id", "message_id"],
        column_type_names=["UUID", "String"],
    )
    assert client.query(
        "SELECT person FROM events WHERE company_id = toUUID(%(c)s) AND message_id = 'nobody'",
        parameters={"c": t.company_id},
    ).result_rows == [(0,)]


def test_a_column_already_added_is_not_added_again(settings):
    """ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: a migration cut short after its ALTER repeats it."""
    client = clickhouse_client(settings.clickhouse_url)
    layout = Layout(database=client.database)
    assert layout.already_applied(client, "ALTER TABLE events ADD COLUMN person UInt64 DEFAULT 0")
    assert not layout.already_applied(client, "ALTER TABLE events ADD COLUMN nobody UInt64 DEFAULT 0")
    assert not layout.already_applied(client, "CREATE TABLE IF NOT EXISTS events (a UInt8) ENGINE = Log")
