"""The cluster form of the ClickHouse migrations and of the statements a Distributed table cannot run
(models/clickhouse_cluster.py); tests/cluster runs them on a real cluster."""

from __future__ import annotations

import pytest

from models.clickhouse_cluster import SHARDING_KEYS, Layout
from models.migrate import migration_files, sql_statements

CLUSTER = Layout("adt", "analytics")


def every_statement() -> list[str]:
    return [statement for _, path in migration_files("clickhouse") for statement in sql_statements(path)]


def test_one_server_runs_the_migrations_as_written():
    single = Layout(database="analytics")
    assert [single.statements(s) for s in every_statement()] == [[s] for s in every_statement()]
    assert single.storage("events") == "events"
    assert single.system("parts") == "system.parts"
    assert single.insert_settings == {}


def test_a_table_becomes_replicated_local_tables_and_a_distributed_table_sharded_by_person():
    statement = next(s for s in every_statement() if s.startswith("CREATE TABLE IF NOT EXISTS events "))
    local, distributed = CLUSTER.statements(statement)
    assert local.startswith("CREATE TABLE IF NOT EXISTS `analytics`.events_local ON CLUSTER `adt` (")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics/events_local', '{replica}', received_at)"
        in local
    )
    assert local.endswith("ORDER BY (company_id, event_time, message_id)")
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS `analytics`.events ON CLUSTER `adt` AS `analytics`.events_local ENGINE = "
        "Distributed(adt, `analytics`, events_local, "
        "sipHash64(concat(toString(company_id), if(user_id != '', user_id, anonymous_id))))"
    )
    aggregating = next(s for s in every_statement() if "identity_first_seen (" in s)
    assert (
        "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/analytics/identity_first_seen_local', '{replica}')"
        in (CLUSTER.statements(aggregating)[0])
    )


def test_views_read_and_write_the_local_tables_of_their_node():
    view = next(s for s in every_statement() if s.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv"))
    [form] = CLUSTER.statements(view)
    assert form.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `analytics`.event_ids_mv ON CLUSTER `adt` TO `analytics`.event_ids_local AS"
    )
    assert "FROM `analytics`.events_local" in form


def test_every_table_the_migrations_create_has_a_sharding_key():
    created = {s.split()[5] for s in every_statement() if s.startswith("CREATE TABLE IF NOT EXISTS")}
    assert created == set(SHARDING_KEYS)
    with pytest.raises(ValueError, match="no sharding key"):
        CLUSTER.statements("CREATE TABLE IF NOT EXISTS other (a UInt8) ENGINE = MergeTree() ORDER BY a")
    with pytest.raises(ValueError, match="no cluster form"):
        CLUSTER.statements("ALTER TABLE events DROP COLUMN x")


def test_a_column_is_added_to_the_local_tables_and_the_distributed_table_made_again_from_them():
    added = next(s for s in every_statement() if s.startswith("ALTER TABLE events ADD COLUMN person "))
    local, dropped, distributed = CLUSTER.statements(added)
    assert local == "ALTER TABLE `analytics`.events_local ON CLUSTER `adt` " + added.removeprefix("ALTER TABLE events ")
    assert dropped == "DROP TABLE IF EXISTS `analytics`.events ON CLUSTER `adt`"
    created = next(s for s in every_statement() if s.startswith("CREATE TABLE IF NOT EXISTS events "))
    assert distributed == CLUSTER.statements(created)[1]


def test_mutations_partitions_and_system_tables_reach_every_node():
    assert CLUSTER.storage("events") == "`analytics`.events_local ON CLUSTER `adt`"
    assert CLUSTER.system("mutations") == "cluster('adt', system.mutations)"
    assert CLUSTER.insert_settings == {"insert_distributed_sync": 1}
    assert "ReplicatedMergeTree('/clickhouse/tables/all/analytics/schema_migrations', '{replica}')" in (
        CLUSTER.migrations_table()
    )
