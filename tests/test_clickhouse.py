"""models/clickhouse.ClientPool, the web's ClickHouse clients, against the real server."""
from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from models.clickhouse import ClientPool


def test_a_pool_makes_a_client_per_query_in_flight_and_reuses_them(settings):
    pool = ClientPool(settings.clickhouse_url)
    with pool.client() as first, pool.client() as second:
        assert first is not second
        assert first.command("SELECT 1") == 1 and second.command("SELECT 2") == 2
    with pool.client() as again:
        assert again in (first, second)
        assert again.command("SELECT 3") == 3


def test_a_client_goes_back_to_the_pool_after_a_failed_query(settings):
    pool = ClientPool(settings.clickhouse_url)
    with pytest.raises(DatabaseError), pool.client() as client:
        client.command("SELECT no_such_function()")
    with pool.client() as again:
        assert again is client and again.command("SELECT 1") == 1
