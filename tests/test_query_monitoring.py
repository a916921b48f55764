"""Database monitoring (adtivity/querymetrics.py): every Postgres and ClickHouse query timed by store
and statement shape; slow queries logged once each, normalised (no values), with what asked for them;
pool statistics in /metrics and /v1/system/status, and in the worker's /metrics."""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.request

import pytest
from playhouse.db_url import parse
from prometheus_client import REGISTRY

from adtivity import querymetrics
from adtivity.jobs import CHECK_HEALTH, Jobs, redis_broker
from models.clickhouse import clickhouse_client
from models.db import MonitoredPostgres, database
from tests.processes import Process, free_port, process_env, wait_for


def timed_count(store: str, statement: str) -> float:
    return REGISTRY.get_sample_value("adtivity_db_query_seconds_count", {"store": store, "statement": statement}) or 0


def test_every_query_is_timed_by_store_and_statement_shape(api, settings):
    users, events = timed_count("postgres", "select users"), timed_count("clickhouse", "select events")
    api.user()  # registering looks the email up
    clickhouse_client(settings.clickhouse_url).query("SELECT count() FROM events WHERE message_id = 'a value'")
    assert timed_count("postgres", "select users") > users
    assert timed_count("clickhouse", "select events") == events + 1


def test_a_slow_query_is_logged_once_normalised_with_its_caller_and_request(settings, caplog):
    querymetrics.configure(dataclasses.replace(settings, slow_query_ms_postgres=5, slow_query_ms_clickhouse=5))
    token = querymetrics.origin.set(querymetrics.Origin("/v1/companies/{company_id}/analytics/overview", "req-7"))
    try:
        with caplog.at_level(logging.WARNING, logger="adtivity.slow_queries"), database.connection_context():
            database.execute_sql("SELECT pg_sleep(%s), 'a tenant''s value'", (0.02,))
            database.execute_sql("SELECT 1")
            clickhouse_client(settings.clickhouse_url).query("SELECT sleep(0.05), 'another value', 42")
    finally:
        querymetrics.origin.reset(token)
        querymetrics.configure(settings)
    slow = [record.fields for record in caplog.records if record.getMessage() == "slow query"]
    assert [(line["store"], line["statement"]) for line in slow] == [
        ("postgres", "SELECT pg_sleep(?), ?"),
        ("clickhouse", "SELECT sleep(?), ?, ?"),
    ]
    assert all(line["caller"] == "/v1/companies/{company_id}/analytics/overview" for line in slow)
    assert all(line["request_id"] == "req-7" and line["ms"] >= 5 for line in slow)
    assert slow[0]["rows"] == 1
    assert REGISTRY.get_sample_value("adtivity_db_slow_queries_total", {"store": "postgres", "statement": "select"})


def test_statements_are_labelled_by_operation_and_table_and_normalised_without_values():
    assert querymetrics.shape('INSERT INTO "rollup_counts" (a) VALUES (%s)') == "insert rollup_counts"
    assert (
        querymetrics.shape("ALTER TABLE `db`.events_local ON CLUSTER `c` DELETE WHERE x = 1") == "alter db.events_local"
    )
    assert querymetrics.normalised("SELECT * FROM t WHERE a IN ('x', 'y''z', 3) AND b = %(b)s") == (
        "SELECT * FROM t WHERE a IN (?) AND b = ?"
    )


def test_a_pool_counts_the_connections_it_closes_for_age(settings):
    pool = MonitoredPostgres(**parse(settings.database_url), pool_name="postgres-age", stale_timeout=60)
    pool.connect()
    pool.close()
    assert pool._is_stale(time.time() - 3600) and not pool._is_stale(time.time())  # peewee's own check
    assert querymetrics.pool_statistics.snapshot()["postgres-age"]["closed_for_age"] == 1
    pool.close_all()
    del querymetrics.pool_statistics.pools["postgres-age"]


def test_the_web_shows_its_pools_in_metrics_and_system_status(api, settings):
    from adtivity.cli import make_platform_admin

    admin = api.user()
    make_platform_admin(settings, admin.email, None)
    status = api.get("/v1/system/status", auth=admin).json
    assert status["pools"]["postgres"]["max"] == 20 and status["pools"]["postgres"]["store"] == "postgres"
    assert {"postgres", "clickhouse", "redis"} <= set(status["pools"])
    metrics = api.get("/metrics").text
    assert 'adtivity_db_pool_max_connections{pool="postgres",store="postgres"} 20.0' in metrics
    assert 'adtivity_db_pool_in_use_connections{pool="redis",store="redis"}' in metrics


@pytest.mark.processes
def test_the_worker_serves_query_timings_and_pool_statistics(settings):
    port = free_port()
    worker = Process("worker", process_env(WORKER_METRICS_PORT=str(port)))
    try:
        worker.wait_ready()
        Jobs(redis_broker(settings)).enqueue(CHECK_HEALTH)

        def scraped() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return answer.read().decode()

        wait_for(lambda: 'adtivity_db_query_seconds_count{statement="select' in scraped(), 30, "query timings")
        metrics = scraped()
    finally:
        worker.stop()
    assert 'adtivity_db_pool_max_connections{pool="postgres",store="postgres"}' in metrics
    assert 'adtivity_db_pool_idle_connections{pool="redis-' in metrics
