"""The security sweep: every route against anonymous callers, key guessing throttled, a bad key costing
no more than a good one, and tenants that share user ids, wallets and message ids kept apart.

With tests/test_role_matrix.py (every company endpoint against every principal, expired and ended
tokens and revoked keys included), tests/test_auth.py (login lockout and per-address limits, reset
tokens only in the outbox) and tests/test_system.py (no internals in a 500), this covers the holes
found in the original Adtivity backend; docs/security.md maps each hole to its test.
"""

from __future__ import annotations

import re
import uuid
from unittest import mock

import bcrypt
import pytest

from accounts.security import new_key, parse_key
from models.clickhouse import clickhouse_client
from models.db import database
from models.tracking import EndUser, Quarantine, Wallet
from tests.helpers import served
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain
from web.keycache import KeyCache

PUBLIC_ROUTES = {
    ("/health", "get"),
    ("/ready", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
    ("/docs", "get"),
    ("/app", "get"),
    ("/app/reset", "get"),
    ("/app/invite", "get"),
    ("/sdk/adtivity.js", "get"),
    ("/v1/auth/register", "post"),
    ("/v1/auth/login", "post"),
    ("/v1/auth/refresh", "post"),
    ("/v1/auth/password-reset", "post"),
    ("/v1/auth/password-reset/confirm", "post"),
}
WALLET = "0x" + "ab" * 20


def concrete(path: str) -> str:
    """A route's template with every parameter filled by a made-up id."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


def test_anonymous_callers_reach_only_the_public_routes(client):
    routes = served(client.app)
    assert ("/v1/companies/{company_id}", "delete") in routes and len(routes) > 60
    for path, method in sorted(routes):
        answer = client.simulate_request(method.upper(), concrete(path), json={})
        if (path, method) in PUBLIC_ROUTES:
            assert answer.status_code < 500, (method, path, answer.text)
        else:
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
            assert set(answer.json["error"]) == {"code", "message", "details"}


def test_key_guessing_is_throttled_per_address_even_for_a_right_key_afterwards(with_settings):
    api = with_settings(key_failures_per_ip_per_minute=5)
    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    guesses = [new_key("write")[0] for _ in range(5)]
    for guess in guesses[:4]:
        assert api.post("/v1/events", auth=guess, json=event, remote_addr="10.0.0.1").status_code == 401
    in_body = api.post("/v1/events", json={"write_key": guesses[4], "batch": [event]}, remote_addr="10.0.0.1")
    assert in_body.status_code == 401  # a key in the body (beacons) is charged the same
    refused = api.post("/v1/events", auth=new_key("write")[0], json=event, remote_addr="10.0.0.1")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json["error"]["code"] == "rate_limited"
    assert api.post("/v1/events", auth=t.write_key, json=event, remote_addr="10.0.0.1").status_code == 429
    assert api.post("/v1/events", auth=t.write_key, json=event, remote_addr="10.0.0.2").status_code == 200
    assert api.get(f"/v1/companies/{t.company_id}", auth=t.read_key, remote_addr="10.0.0.3").status_code == 200


def test_a_bad_key_costs_no_more_than_a_good_one(with_settings, redis_client):
    """One indexed lookup by public id and a SHA-256 comparison, whatever the key, however many
    companies: no bcrypt, no scan over companies. (bench/keys.py measures the times.)"""
    api = with_settings(login_rate_per_ip_per_minute=1000)
    tenants = [tenant(api) for _ in range(30)]
    good = tenants[-1].write_key
    unknown = new_key("write")[0]
    wrong_secret = good.rsplit("_", 1)[0] + "_" + "0" * 64
    cache = KeyCache(redis_client, ttl=30)
    loads = []
    original_load = KeyCache._load
    with (
        mock.patch.object(
            KeyCache, "_load", side_effect=lambda public_id: loads.append(public_id) or original_load(public_id)
        ),
        mock.patch.object(bcrypt, "checkpw", side_effect=AssertionError("bcrypt on a key")),
        mock.patch.object(bcrypt, "hashpw", side_effect=AssertionError("bcrypt on a key")),
    ):
        with database.connection_context():
            costs = {}
            for name, key in (("good", good), ("unknown", unknown), ("wrong secret", wrong_secret)):
                cache.clear()
                loads.clear()
                found = cache.authenticate(parse_key(key))
                costs[name] = len(loads)
                assert (found is not None) == (name == "good")
                loads.clear()
                cache.authenticate(parse_key(key))
                assert loads == []  # the second time is answered from the cache, found or not
    cache.close()
    assert costs == {"good": 1, "unknown": 1, "wrong secret": 1}


def test_the_key_cache_is_bounded_so_made_up_ids_cannot_grow_it(redis_client):
    cache = KeyCache(redis_client, ttl=30, max_entries=10)
    with database.connection_context():
        for _ in range(50):
            assert cache.authenticate(new_key("write")[1]) is None
    cache.close()
    assert len(cache) == 10


def test_tenants_sharing_user_ids_wallets_and_message_ids_stay_apart(api, settings, redis_client):
    first, second = tenant(api), tenant(api)
    for t, plan in ((first, "gold"), (second, "free")):
        answer = api.post(
            "/v1/events",
            auth=t.write_key,
            headers={"User-Agent": CHROME},
            json=[
                {"type": "identify", "user_id": "alice", "traits": {"plan": plan}, "message_id": "same-id-1"},
                {
                    "type": "wallet_connect",
                    "user_id": "alice",
                    "wallet_address": WALLET.upper().replace("0X", "0x"),
                    "chain_id": "1" if plan == "gold" else "137",
                    "message_id": "same-id-2",
                },
            ],
        )
        assert answer.status_code == 200 and answer.json["accepted"] == 2, answer.text
    drain(settings, redis_client)
    with database.connection_context():
        users = {(str(u.company_id), u.traits["plan"]) for u in EndUser.select().where(EndUser.user_id == "alice")}
        wallets = {(str(w.company_id), tuple(w.chains)) for w in Wallet.select().where(Wallet.address == WALLET)}
    assert users == {(first.company_id, "gold"), (second.company_id, "free")}
    assert wallets == {(first.company_id, ("1",)), (second.company_id, ("137",))}
    stored = (
        clickhouse_client(settings.clickhouse_url)
        .query(
            "SELECT toString(company_id), count() FROM events FINAL WHERE message_id IN ('same-id-1', 'same-id-2') "
            "GROUP BY company_id"
        )
        .result_rows
    )
    assert dict(stored) == {first.company_id: 2, second.company_id: 2}  # a message id deduplicates per tenant
    for t in (first, second):
        seen = api.get(f"/v1/companies/{t.company_id}/drilldowns/wallets/{WALLET}", auth=t.read_key)
        assert seen.status_code == 200, seen.text
        assert seen.json["events"] == 1 and [e["chain_id"] for e in seen.json["recent"]] == [
            "1" if t is first else "137"
        ]
        foreign = api.get(f"/v1/companies/{(second if t is first else first).company_id}/events", auth=t.read_key)
        assert foreign.status_code == 404


@pytest.mark.parametrize("field", ["name", "user_id", "properties", "page_path"])
def test_hostile_strings_are_stored_verbatim_and_read_back_harmlessly(api, settings, redis_client, field):
    hostile = "'; DROP TABLE events; -- <script>alert(1)</script> \\' OR 1=1 {{7*7}} \u202e\u0000"
    t = tenant(api)
    event = {"type": "track", "name": "Hostile", "user_id": "u", "message_id": f"hostile-{field}"}
    if field == "properties":
        event["properties"] = {hostile: hostile}
    elif field == "page_path":
        event["context"] = {"page": {"path": "/" + hostile}}
    else:
        event[field] = hostile
    answer = api.post("/v1/events", auth=t.write_key, headers={"User-Agent": CHROME}, json=event)
    assert answer.status_code == 200 and answer.json["accepted"] == 1, answer.text
    drain(settings, redis_client)
    items = api.get(f"/v1/companies/{t.company_id}/events", auth=t.read_key).json["items"]
    assert len(items) == 1
    stored = items[0]
    if field == "properties":
        assert stored["properties"] == {hostile: hostile}
    elif field == "page_path":
        assert stored["page_path"] == "/" + hostile
    else:
        assert stored[field] == hostile
    assert clickhouse_client(settings.clickhouse_url).query("EXISTS TABLE events").result_rows[0][0] == 1


def test_a_nul_in_identity_or_traits_is_kept_in_clickhouse_and_made_safe_for_postgres(api, settings, redis_client):
    """Postgres cannot store NUL; the event stays verbatim in ClickHouse, its entities get U+FFFD, and
    neither its batch nor its neighbours' entities are held back or quarantined."""
    t = tenant(api)
    events = [
        {"type": "identify", "user_id": "a\u0000b", "traits": {"k\u0000": "v\u0000"}, "message_id": "nul"},
        {"type": "identify", "user_id": "neighbour", "traits": {"plan": "pro"}, "message_id": "next"},
    ]
    answer = api.post("/v1/events", auth=t.write_key, headers={"User-Agent": CHROME}, json=events)
    assert answer.status_code == 200 and answer.json["accepted"] == 2, answer.text
    drain(settings, redis_client)
    with database.connection_context():
        users = {u.user_id: u.traits for u in EndUser.select().where(EndUser.company_id == t.company_id)}
        assert Quarantine.select().count() == 0
    assert users == {"a\ufffdb": {"k\ufffd": "v\ufffd"}, "neighbour": {"plan": "pro"}}
    stored = (
        clickhouse_client(settings.clickhouse_url)
        .query(
            "SELECT user_id FROM events WHERE company_id = toUUID(%(c)s) AND message_id = 'nul'",
            parameters={"c": t.company_id},
        )
        .result_rows
    )
    assert stored == [("a\u0000b",)]


def test_text_that_spells_a_nul_escape_reaches_postgres_as_written(api, settings, redis_client):
    """Only real NULs become U+FFFD on their way to Postgres (the rows travel as JSON, where a NUL is
    the escape \\u0000): a backslash and "u0000" typed as text are kept, also after other backslashes."""
    t = tenant(api)
    traits = {"spelled": "\\u0000", "after a backslash": "\\\u0000", "two backslashes": "\\\\u0000"}
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        headers={"User-Agent": CHROME},
        json={"type": "identify", "user_id": "writer", "traits": traits, "message_id": "spelled"},
    )
    assert answer.status_code == 200 and answer.json["accepted"] == 1, answer.text
    drain(settings, redis_client)
    with database.connection_context():
        stored = EndUser.get(EndUser.company_id == t.company_id, EndUser.user_id == "writer").traits
    assert stored == {"spelled": "\\u0000", "after a backslash": "\\\ufffd", "two backslashes": "\\\\u0000"}


def test_a_nul_in_a_dashboard_api_body_is_a_422_not_a_500(api):
    answer = api.post("/v1/auth/password-reset", json={"email": "a\u0000@example.com"})
    assert answer.status_code == 422 and "NUL" in answer.json["error"]["message"]
    owner = api.user()
    assert api.post("/v1/companies", auth=owner, json={"name": "bad\u0000name"}).status_code == 422
    assert api.post("/v1/companies", auth=owner, json={"name": "fine \\u0000 as text"}).status_code == 201


def test_every_route_answers_head_as_get_and_carries_the_security_headers(with_settings):
    """Walks every GET route of the app, signed in as an owner of a real company (so most answer
    200) and anonymously: HEAD answers GET's status with no body; every answer says nosniff and its
    referrer policy, HSTS when set; HTML pages carry the CSP that forbids framing; authenticated JSON
    is never stored."""
    secure = with_settings(hsts_seconds=31_536_000)
    owner = secure.user()
    company = secure.company(owner)
    key = secure.key(owner, company)["details"]["id"]
    filled = {"company_id": company, "key_id": key, "user_id": "someone", "address": WALLET}
    routes = sorted(path for path, method in served(secure.client.app) if method == "get")
    assert "/app" in routes and "/docs" in routes and "/v1/companies/{company_id}/analytics/overview" in routes
    for path in routes:
        concrete_path = re.sub(r"\{([^}]+)\}", lambda found: filled.get(found[1], str(uuid.uuid4())), path)
        for auth in (owner, None):
            got = secure.get(concrete_path, auth=auth)
            head = secure.request("HEAD", concrete_path, auth=auth)
            assert head.status_code == got.status_code, (path, auth is not None, head.status_code, got.status_code)
            assert head.content == b"", path
            for answer in (got, head):
                assert answer.headers["x-content-type-options"] == "nosniff", path
                assert answer.headers["referrer-policy"] == "same-origin", path
                assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains", path
            if got.headers.get("content-type", "").startswith("text/html"):
                assert "frame-ancestors 'none'" in got.headers["content-security-policy"], path
            elif auth is not None and got.headers.get("content-type", "").startswith("application/json"):
                assert got.headers["cache-control"] == "no-store", path
