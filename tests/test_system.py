"""System behaviour: /health, /ready, /metrics, the one error shape, CORS, request ids."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time

import falcon
import pytest

from tests.conftest import make_client
from tests.helpers import Api
from tests.processes import free_port, server_env, wait_for


def test_health_touches_nothing(settings):
    nothing_runs_there = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    answer = make_client(nothing_runs_there).simulate_get("/health")
    assert answer.status_code == 200 and answer.json == {"status": "ok"}


def test_ready_reports_each_dependency_with_its_latency(client):
    answer = client.simulate_get("/ready")
    assert answer.status_code == 200, answer.text
    dependencies = answer.json["dependencies"]
    assert set(dependencies) == {"postgres", "redis", "clickhouse", "broker"}
    assert all(d["up"] and d["latency_ms"] >= 0 for d in dependencies.values())
    assert answer.json["pipeline"] is None  # no health check has run yet


def test_ready_sums_up_the_latest_health_check(client, settings, redis_client):
    from adtivity.jobs import redis_broker
    from models.redis_streams import PERSIST_GROUP, stream_key
    from workers.health import record_health

    settings = dataclasses.replace(settings, stream_shards=2)  # the backlog of a shard other than the first
    redis_client.xgroup_create(stream_key(1), PERSIST_GROUP, id="0", mkstream=True)
    redis_client.xadd(stream_key(1), {"e": "x"})
    redis_client.xadd(stream_key(1), {"e": "y"})
    record_health(settings, redis_client, redis_broker(settings))
    pipeline = client.simulate_get("/ready").json["pipeline"]
    assert pipeline["stream_backlog"] == 2 and pipeline["quarantined_entries"] == 0 and pipeline["stale_rollups"] == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_ready_turns_503_when_redis_stops(settings, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        env=server_env(),
    )
    try:
        client = make_client(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
        wait_for(lambda: client.simulate_get("/ready").status_code == 200, 5, "/ready with the new Redis")
        server.terminate()
        server.wait(5)
        started = time.monotonic()
        answer = client.simulate_get("/ready")
        assert time.monotonic() - started < 2.5
        assert answer.status_code == 503
        assert answer.json["dependencies"]["redis"]["up"] is False
        assert answer.json["dependencies"]["postgres"]["up"] is True
        assert answer.headers["Retry-After"]
    finally:
        server.kill()


def test_ready_turns_503_when_clickhouse_is_unreachable(settings):
    client = make_client(dataclasses.replace(settings, clickhouse_url=f"http://127.0.0.1:{free_port()}/x"))
    answer = client.simulate_get("/ready")
    assert answer.status_code == 503
    assert answer.json["dependencies"]["clickhouse"]["up"] is False


def test_a_down_broker_does_not_make_the_api_unready(settings):
    client = make_client(dataclasses.replace(settings, kafka_broker_url=f"kafka://127.0.0.1:{free_port()}"))
    answer = client.simulate_get("/ready")
    assert answer.status_code == 200
    assert answer.json["dependencies"]["broker"] == {
        **answer.json["dependencies"]["broker"],
        "up": False,
        "required": False,
    }


def test_redis_down_answers_503_fast_not_a_hang(settings):
    api = Api(make_client(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    started = time.monotonic()
    answer = api.post("/v1/auth/login", json={"email": "a@example.com", "password": "whatever12345"})
    assert time.monotonic() - started < 2
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json["error"]["code"] == "unavailable"


def test_metrics_count_requests_by_route_template_and_status(api):
    owner = api.user()
    company_id = api.company(owner)
    api.get(f"/v1/companies/{company_id}", auth=owner)
    text = api.get("/metrics").text
    assert 'adtivity_http_requests_total{method="GET",route="/v1/companies/{company_id}",status="200"}' in text
    assert company_id not in text
    assert "adtivity_http_request_seconds_bucket" in text


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("GET", "/no/such/route", {}, 404, "404_not_found"),
        ("PUT", "/v1/companies", {}, 405, "405_method_not_allowed"),
        ("POST", "/v1/auth/login", {"body": b"{not json"}, 400, "invalid_json"),
        ("POST", "/v1/auth/login", {"body": b""}, 400, "invalid_json"),
        ("POST", "/v1/auth/login", {"json": {"email": 5}}, 422, "invalid_body"),
        ("POST", "/v1/auth/login", {"json": [1, 2]}, 422, "invalid_body"),
        ("POST", "/v1/auth/login", {"body": b"{" + b" " * 2_000_000 + b"}"}, 413, "payload_too_large"),
    ],
)
def test_every_error_has_the_one_json_shape(client, method, path, kwargs, status, code):
    answer = client.simulate_request(method, path, **kwargs)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("application/json")
    assert set(answer.json) == {"error"}
    assert set(answer.json["error"]) == {"code", "message", "details"}
    assert answer.json["error"]["code"] == code


def test_an_unexpected_error_is_a_bare_500_without_internals(settings, caplog):
    from web.app import Deps, create_app

    class Broken:
        PUBLIC = True

        def on_get(self, req, resp):
            raise RuntimeError("secret internal detail: password=hunter2 at /srv/app.py line 3")

    app = create_app(Deps.from_settings(settings))
    app.add_route("/broken", Broken())
    answer = falcon.testing.TestClient(app).simulate_get("/broken", headers={"X-Request-Id": "trace-me-1"})
    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "internal_error"
    assert "secret" not in answer.text and "hunter2" not in answer.text and "Traceback" not in answer.text
    assert answer.headers["X-Request-Id"] == "trace-me-1"
    assert any(getattr(r, "fields", {}).get("request_id") == "trace-me-1" for r in caplog.records)


def test_request_id_is_echoed_or_made(client):
    assert client.simulate_get("/health", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.simulate_get("/health", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert made != "bad id with spaces" and len(made) == 32


def test_cors_is_open_for_ingest_and_allow_listed_for_the_dashboard(settings):
    client = make_client(dataclasses.replace(settings, cors_allowed_origins=("https://dash.example.com",)))
    preflight = {"Origin": "https://shop.example.org", "Access-Control-Request-Method": "POST"}
    ingest = client.simulate_options("/v1/events", headers=preflight)
    assert ingest.status_code == 204
    assert ingest.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in ingest.headers
    foreign = client.simulate_options("/v1/companies", headers=preflight)
    assert "Access-Control-Allow-Origin" not in foreign.headers
    allowed = client.simulate_options("/v1/companies", headers={**preflight, "Origin": "https://dash.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    simple = client.simulate_get("/health", headers={"Origin": "https://dash.example.com"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"


def test_logs_name_routes_not_paths_so_tokens_in_paths_stay_out(api, caplog):
    caplog.set_level("INFO")
    session = api.user()
    api.post("/v1/invites/secret-invite-token-123/accept", auth=session)
    logged = " ".join(str(getattr(r, "fields", {})) + r.getMessage() for r in caplog.records)
    assert "secret-invite-token-123" not in logged
    assert "/v1/invites/{token}/accept" in logged


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # wsgiref's check in the test client
def test_made_up_http_methods_add_no_metric_series(client):
    """Every label value comes from a closed set: an unknown method counts as OTHER, so probing with
    made-up methods cannot grow /metrics without bound."""
    for n in range(5):
        client.simulate_request(f"PROBEX{n}", "/v1/companies")
    exposed = client.simulate_get("/metrics").text
    assert "PROBEX" not in exposed
    assert 'method="OTHER"' in exposed
