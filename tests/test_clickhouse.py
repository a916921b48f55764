"""models/clickhouse.ClientPool, the web's ClickHouse clients, against the real server."""

from __future__ import annotations

import dataclasses

import falcon.testing
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from models.clickhouse import ClientPool, PoolExhausted
from tests.helpers import Api
from tests.ingest_helpers import tenant
from web.app import Deps, create_app


def test_a_pool_makes_a_client_per_query_in_flight_and_reuses_them(settings):
    pool = ClientPool(settings.clickhouse_url, size=2, wait=1)
    with pool.client() as first, pool.client() as second:
        assert first is not second
        assert first.command("SELECT 1") == 1 and second.command("SELECT 2") == 2
    with pool.client() as again:
        assert again in (first, second)
        assert again.command("SELECT 3") == 3


def test_a_client_goes_back_to_the_pool_after_a_failed_query(settings):
    pool = ClientPool(settings.clickhouse_url, size=1, wait=1)
    with pytest.raises(DatabaseError), pool.client() as client:
        client.command("SELECT no_such_function()")
    with pool.client() as again:
        assert again is client and again.command("SELECT 1") == 1


def test_a_pool_holds_at_most_its_size_and_a_borrower_gives_up_after_its_wait(settings):
    pool = ClientPool(settings.clickhouse_url, size=1, wait=0.2)
    with pool.client() as only:
        with pytest.raises(PoolExhausted), pool.client():
            pass
    with pool.client() as again:
        assert again is only


def test_reading_events_back_is_a_503_while_every_clickhouse_client_is_busy(settings):
    """WEB_CLICKHOUSE_CLIENTS and WEB_CLICKHOUSE_WAIT_SECONDS, through the app."""
    deps = Deps.from_settings(dataclasses.replace(settings, web_clickhouse_clients=1, web_clickhouse_wait_seconds=0.2))
    api = Api(falcon.testing.TestClient(create_app(deps)))
    t = tenant(api)
    with deps.clickhouse.client():
        busy = api.get(f"/v1/companies/{t.company_id}/events", auth=t.read_key)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json["error"]["code"] == "unavailable"
    assert api.get(f"/v1/companies/{t.company_id}/events", auth=t.read_key).status_code == 200
    deps.keys.close()


def test_default_web_clickhouse_limits_are_the_documented_ones(settings):
    assert (settings.web_clickhouse_clients, settings.web_clickhouse_wait_seconds) == (8, 5.0)
