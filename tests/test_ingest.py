"""Ingest over HTTP: the three wire formats, authentication, limits, per-event rejections and the
enrichment each accepted event gets before it reaches the stream."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import json
import random
import uuid

import msgspec
import pytest
from prometheus_client import REGISTRY

from ingest import wire
from tests.conftest import make_client
from tests.helpers import Api
from tests.ingest_helpers import CHROME, GOOGLEBOT, streamed, tenant
from tests.processes import free_port


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_native_accepts_one_event_an_array_and_a_batch(api, redis_client, settings):
    t = tenant(api)
    one = api.post("/v1/events", auth=t.write_key, json={"type": "track", "name": "A", "user_id": "u1"})
    many = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[{"type": "track", "name": "B", "user_id": "u1"}, {"type": "page", "anonymous_id": "a1"}],
    )
    batch = api.post(
        "/v1/events",
        auth=t.write_key,
        json={
            "batch": [{"type": "identify", "user_id": "u1", "traits": {"plan": "pro"}}],
            "sent_at": iso(dt.datetime.now(dt.UTC)),
        },
    )
    assert [r.json["accepted"] for r in (one, many, batch)] == [1, 2, 1]
    events = streamed(redis_client, settings)
    assert [(e.type, e.name) for e in events] == [("track", "A"), ("track", "B"), ("page", ""), ("identify", "")]
    assert all(e.company_id == t.company_id for e in events)
    assert events[3].traits == {"plan": "pro"}


def ingest_counts() -> dict[tuple[str, str], float]:
    return {
        (wire_format, outcome): REGISTRY.get_sample_value(
            "adtivity_ingest_events_total", {"format": wire_format, "outcome": outcome}
        )
        or 0.0
        for wire_format in ("native", "segment", "legacy")
        for outcome in ("accepted", "rejected")
    }


def test_events_accepted_and_rejected_are_counted_by_format(api):
    t = tenant(api)
    before = ingest_counts()
    good, bad = {"type": "track", "name": "A", "user_id": "u"}, {"type": "track", "user_id": "u"}
    assert api.post("/v1/events", auth=t.write_key, json=[good, bad, good]).json["accepted"] == 2
    assert api.post("/v1/events", auth=t.write_key, json=[bad]).status_code == 400
    assert (
        api.post("/v1/batch", auth=t.write_key, json={"batch": [{"type": "track", "event": "E", "userId": "u"}]}).json[
            "accepted"
        ]
        == 1
    )
    assert (
        api.post(
            "/sdk/event", auth=t.write_key, json=[{"type": "nope"}, {"type": "track", "eventName": "x", "user_id": "u"}]
        ).json["accepted"]
        == 1
    )
    after = ingest_counts()
    assert {k: after[k] - before[k] for k in after} == {
        ("native", "accepted"): 2,
        ("native", "rejected"): 2,
        ("segment", "accepted"): 1,
        ("segment", "rejected"): 0,
        ("legacy", "accepted"): 1,
        ("legacy", "rejected"): 1,
    }


def test_one_bad_event_never_fails_its_neighbours(api, redis_client, settings):
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": "ok", "user_id": "u"},
            {"type": "track", "user_id": "u"},
            {"type": "nonsense", "user_id": "u"},
            {"type": "track", "name": "no identity"},
            {"type": "transaction", "user_id": "u", "tx_hash": "0x1", "chain_id": 1, "status": "pending"},
            {"type": "payment", "user_id": "u", "payment_id": "p", "status": "completed", "amount": "1e40"},
            {"type": "track", "name": 42, "user_id": "u"},
            "not an object",
            {"type": "page", "anonymous_id": "a"},
        ],
    )
    assert answer.status_code == 200
    assert answer.json["accepted"] == 2
    reasons = {r["index"]: r["reason"] for r in answer.json["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "needs name" in reasons[1]
    assert "unknown event type" in reasons[2]
    assert "user_id or anonymous_id" in reasons[3]
    assert "submitted, confirmed, failed" in reasons[4]
    assert "digits before the point" in reasons[5]
    assert "$.name" in reasons[6]
    assert len(streamed(redis_client, settings)) == 2


def test_all_events_bad_is_a_400_with_the_reasons(api):
    t = tenant(api)
    answer = api.post("/v1/events", auth=t.write_key, json=[{"type": "track"}])
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "no_valid_events"
    assert answer.json["error"]["details"]["rejected"][0]["index"] == 0


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"42", 400, "invalid_json"),
        (b'{"batch": "nope"}', 422, "invalid_body"),
        (b"[]", 400, "empty_batch"),
    ],
)
def test_malformed_bodies(api, body, status, code):
    t = tenant(api)
    answer = api.post("/v1/events", auth=t.write_key, body=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.json["error"]["code"] == code


def test_keys_missing_unknown_revoked_or_of_the_wrong_kind(api):
    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    assert api.post("/v1/events", json=event).status_code == 401
    assert api.post("/v1/events", auth="adt_w_0000000000000000_" + "0" * 64, json=event).status_code == 401
    assert api.post("/v1/events", auth=t.read_key, json=event).status_code == 403
    assert api.post("/v1/events", auth=t.owner, json=event).status_code == 403
    key_id = api.get(f"/v1/companies/{t.company_id}/keys", auth=t.owner).json["items"][0]["id"]
    api.delete(f"/v1/companies/{t.company_id}/keys/{key_id}", auth=t.owner)
    assert api.post("/v1/events", auth=t.write_key, json=event).status_code == 401


def test_limits_batch_size_event_size_and_body_size(with_settings, settings):
    api = with_settings(ingest_max_batch=3, ingest_max_event_bytes=200, max_body_bytes=2_000)
    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    assert api.post("/v1/events", auth=t.write_key, json=[event] * 3).status_code == 200
    too_many = api.post("/v1/events", auth=t.write_key, json=[event] * 4)
    assert too_many.status_code == 413 and too_many.json["error"]["code"] == "payload_too_large"
    big_event = {**event, "properties": {"blob": "x" * 300}}
    mixed = api.post("/v1/events", auth=t.write_key, json=[event, big_event])
    assert mixed.json["accepted"] == 1 and "larger than 200 bytes" in mixed.json["rejected"][0]["reason"]
    too_big = api.post("/v1/events", auth=t.write_key, json={**event, "properties": {"blob": "x" * 3_000}})
    assert too_big.status_code == 413


def test_default_limits_are_the_documented_ones(settings):
    assert (
        settings.ingest_max_batch,
        settings.ingest_max_event_bytes,
        settings.max_body_bytes,
        settings.max_json_depth,
    ) == (500, 32_768, 1_048_576, 32)


def nested(levels: int) -> dict:
    """An object `levels` deep: {"a": {"a": ... {"a": 1}}}."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def test_an_event_nested_deeper_than_the_limit_is_rejected_alone(with_settings, redis_client, settings):
    """MAX_JSON_DEPTH counts the event object as level 1: properties two levels deep make 3."""
    api = with_settings(max_json_depth=3)
    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {**event, "properties": nested(2)},
            {**event, "properties": nested(3)},
            {**event, "properties": {"many": [{"brackets": "[{"}] * 20}},  # more brackets than levels, and in strings
            {**event, "properties": {"text": "{[" * 50}},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in answer.json["rejected"]] == [
        (1, "the event nests objects and arrays more than 3 levels deep"),
        (2, "the event nests objects and arrays more than 3 levels deep"),
    ]
    assert [e.properties for e in streamed(redis_client, settings)] == [nested(2), {"text": "{[" * 50}]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/batch", "/v1/track", "/sdk/event", "/v1/auth/login"])
def test_a_body_too_deep_to_decode_is_a_400_not_a_crash(api, path):
    """Far past MAX_JSON_DEPTH (and past what the decoder's recursion can follow): one answer, 400."""
    t = tenant(api)
    body = '{"type":"track","batch":[' * 3000 + "]}" * 3000
    answer = api.post(path, auth=t.write_key, body=body.encode(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] == "invalid_json"


def test_gzip_bodies_are_accepted_and_gzip_bombs_refused(with_settings):
    api = with_settings(max_body_bytes=10_000)
    t = tenant(api)
    body = gzip.compress(json.dumps([{"type": "track", "name": "z", "user_id": "u"}] * 5).encode())
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        body=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200 and answer.json["accepted"] == 5
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    assert len(bomb) < 10_000
    refused = api.post("/v1/events", auth=t.write_key, body=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 413
    broken = api.post("/v1/events", auth=t.write_key, body=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 400 and broken.json["error"]["code"] == "invalid_gzip"
    assert api.post("/v1/events", auth=t.write_key, body=b"[]", headers={"Content-Encoding": "br"}).status_code == 415


def test_a_truncated_gzip_body_is_refused_whole(api):
    """A client bug that cuts a gzip body must not store a silently shortened batch: without its
    trailer (the checksum and length) the body is refused, even when what inflates is valid JSON."""
    t = tenant(api)
    body = gzip.compress(json.dumps([{"type": "track", "name": "z", "user_id": "u"}] * 5).encode())
    for cut in (body[:-8], body[:-4], body[: len(body) // 2]):
        answer = api.post("/v1/events", auth=t.write_key, body=cut, headers={"Content-Encoding": "gzip"})
        assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_gzip", answer.text


def test_per_key_rate_limit(with_settings):
    api = with_settings(ingest_rate_per_key_per_second=2, ingest_burst_seconds=2)
    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    assert api.post("/v1/events", auth=t.write_key, json=[event] * 4).status_code == 200
    limited = api.post("/v1/events", auth=t.write_key, json=event)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_redis_down_is_a_fast_503_with_retry_after(settings, api):
    t = tenant(api)
    down = Api(make_client(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    import time

    started = time.monotonic()
    answer = down.post("/v1/events", auth=t.write_key, json={"type": "track", "name": "x", "user_id": "u"})
    assert time.monotonic() - started < 1.0
    assert answer.status_code == 503 and answer.headers["Retry-After"]


def test_segment_endpoints_with_basic_auth_and_write_key_in_body(api, redis_client, settings):
    t = tenant(api)
    basic = "Basic " + base64.b64encode(f"{t.write_key}:".encode()).decode()
    track = api.post(
        "/v1/track",
        headers={"Authorization": basic},
        json={
            "event": "Order Completed",
            "userId": "u9",
            "messageId": "m-1",
            "properties": {"revenue": 10},
            "integrations": {"All": False},
        },
    )
    page = api.post(
        "/v1/page",
        json={
            "writeKey": t.write_key,
            "name": "Home",
            "anonymousId": "a9",
            "context": {"page": {"url": "https://shop.example/?utm_source=news", "path": "/"}},
        },
    )
    batch = api.post(
        "/v1/batch",
        headers={"Authorization": basic},
        json={
            "batch": [
                {"type": "identify", "userId": "u9", "traits": {"email": "x@example.com"}},
                {"type": "alias", "previousId": "a9", "userId": "u9"},
                {"type": "group", "groupId": "g1", "userId": "u9"},
                {"type": "screen", "name": "Settings", "userId": "u9"},
            ],
            "sentAt": iso(dt.datetime.now(dt.UTC)),
        },
    )
    assert [r.status_code for r in (track, page, batch)] == [200, 200, 200]
    assert track.json["success"] is True
    events = streamed(redis_client, settings)
    assert [(e.type, e.name) for e in events] == [
        ("track", "Order Completed"),
        ("page", "Home"),
        ("identify", ""),
        ("alias", ""),
        ("group", ""),
        ("screen", "Settings"),
    ]
    assert events[0].message_id == "m-1" and events[0].properties == {"revenue": 10}
    assert events[1].utm_source == "news"
    assert events[3].previous_id == "a9" and events[4].group_id == "g1"
    assert api.post("/v1/track", json={"writeKey": "adt_w_nope", "event": "x", "userId": "u"}).status_code == 401


def test_original_sdk_contract(api, redis_client, settings):
    t = tenant(api)
    answer = api.post(
        "/sdk/event",
        headers={"X-API-Key": t.write_key},
        json=[
            {
                "type": "track",
                "eventName": "Mint",
                "user_id": "u1",
                "wallet_address": "0xAbCdEf0123456789abcdef0123456789ABCDEF01",
                "chain_id": "137",
                "transaction_hash": "0x" + "AB" * 32,
                "contract_address": "0x" + "Cd" * 20,
                "country": "de",
                "region": "BE",
                "city": "Berlin",
                "ip_address": "203.0.113.77",
                "timestamp": iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)),
            },
        ],
    )
    assert answer.status_code == 200, answer.text
    event = streamed(redis_client, settings)[0]
    assert event.name == "Mint" and event.wallet_address == "0xabcdef0123456789abcdef0123456789abcdef01"
    assert event.tx_hash == "0x" + "ab" * 32 and event.contract_address == "0x" + "cd" * 20
    assert (event.country, event.region, event.city) == ("DE", "BE", "Berlin")
    assert event.ip == "203.0.113.0"


def test_solana_addresses_are_kept_as_given(api, redis_client, settings):
    t = tenant(api)
    solana = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"
    api.post(
        "/v1/events",
        auth=t.write_key,
        json={"type": "wallet_connect", "wallet_address": solana, "chain_id": "solana", "user_id": "u"},
    )
    assert streamed(redis_client, settings)[0].wallet_address == solana


def test_campaign_fields_of_the_context_win_over_the_page_url(api, redis_client, settings):
    """As in Segment: context.campaign (name, source, ...) is what the SDK says; the URL fills in the rest."""
    t = tenant(api)
    url = "https://shop.example/p?utm_source=google&utm_medium=cpc&utm_term=shoes"
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {
                "type": "page",
                "anonymous_id": "a1",
                "context": {"page": {"url": url}, "campaign": {"name": "winter", "source": "newsletter"}},
            },
            {"type": "page", "anonymous_id": "a1", "context": {"page": {"url": url}, "campaign": {}}},
        ],
    )
    stated, plain = streamed(redis_client, settings)
    assert (stated.utm_campaign, stated.utm_source, stated.utm_medium, stated.utm_term, stated.utm_content) == (
        "winter",
        "newsletter",
        "cpc",
        "shoes",
        "",
    )
    assert (plain.utm_campaign, plain.utm_source, plain.utm_medium, plain.utm_term) == ("", "google", "cpc", "shoes")


def test_enrichment_of_a_browser_event(api, redis_client, settings):
    t = tenant(api)
    api.post(
        "/v1/events",
        auth=t.write_key,
        headers={"User-Agent": CHROME, "CF-IPCountry": "fr"},
        json={
            "type": "page",
            "anonymous_id": "a1",
            "context": {
                "page": {
                    "url": "https://shop.example/p?utm_source=google&utm_medium=cpc&utm_campaign=bf&gclid=abc",
                    "referrer": "https://www.google.com/search?q=x",
                    "title": "P",
                },
                "locale": "fr-FR",
            },
        },
    )
    event = streamed(redis_client, settings)[0]
    assert (event.browser, event.os, event.device, event.is_bot) == ("Chrome", "Mac OS X", "Mac", False)
    assert (event.utm_source, event.utm_medium, event.utm_campaign) == ("google", "cpc", "bf")
    assert (event.click_id_type, event.click_id) == ("gclid", "abc")
    assert event.page_path == "/p" and event.referrer_domain == "www.google.com" and event.locale == "fr-FR"
    assert event.country == "FR"
    assert event.ip == "127.0.0.0"  # the test client's address, anonymised
    assert len(event.message_id) == 36 and event.message_id[14] == "7"  # a UUIDv7 was made
    assert event.session_id


def test_bots_are_flagged_not_dropped(api, redis_client, settings):
    t = tenant(api)
    api.post(
        "/v1/events", auth=t.write_key, headers={"User-Agent": GOOGLEBOT}, json={"type": "page", "anonymous_id": "b"}
    )
    assert streamed(redis_client, settings)[0].is_bot is True


@pytest.mark.parametrize(
    "agent, library",
    [
        ("python-requests/2.32.3", "python-requests"),
        ("Python-urllib/3.11", "Python-urllib"),
        ("Go-http-client/1.1", "Go-http-client"),
        ("okhttp/4.12.0", "okhttp"),
        ("node", "node"),
        ("undici", "undici"),
        ("axios/1.7.2", "axios"),
        ("curl/8.5.0", "curl"),
    ],
)
def test_a_backend_posting_with_an_http_library_is_counted_as_sent_server_side(
    api, redis_client, settings, agent, library
):
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        headers={"User-Agent": agent},
        json={"type": "track", "name": "Paid", "user_id": "u"},
    )
    assert answer.status_code == 200
    [event] = streamed(redis_client, settings)
    assert (event.is_bot, event.device, event.browser) == (False, "Server", library)


def test_a_crawler_named_in_the_events_context_is_a_bot_whatever_library_sent_it(api, redis_client, settings):
    t = tenant(api)
    api.post(
        "/v1/events",
        auth=t.write_key,
        headers={"User-Agent": "python-requests/2.32.3"},
        json=[
            {"type": "page", "anonymous_id": "crawled", "context": {"userAgent": GOOGLEBOT}},
            {"type": "page", "anonymous_id": "person", "context": {"userAgent": CHROME}},
        ],
    )
    by_identity = {event.anonymous_id: event for event in streamed(redis_client, settings)}
    assert by_identity["crawled"].is_bot is True
    assert (by_identity["person"].is_bot, by_identity["person"].browser) == (False, "Chrome")


def test_ip_is_kept_whole_when_anonymising_is_off(with_settings, redis_client, settings):
    api = with_settings(anonymise_ip=False)
    t = tenant(api)
    api.post(
        "/v1/events",
        auth=t.write_key,
        json={"type": "track", "name": "x", "user_id": "u", "context": {"ip": "2001:db8:1234:5678::1"}},
    )
    assert streamed(redis_client, settings)[0].ip == "2001:db8:1234:5678::1"


def test_clock_skew_is_corrected_from_sent_at(api, redis_client, settings):
    t = tenant(api)
    client_clock = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)  # the device's clock runs 3 h ahead
    api.post(
        "/v1/events",
        auth=t.write_key,
        json={
            "batch": [
                {
                    "type": "track",
                    "name": "x",
                    "user_id": "u",
                    "timestamp": iso(client_clock - dt.timedelta(seconds=30)),
                }
            ],
            "sent_at": iso(client_clock),
        },
    )
    event = streamed(redis_client, settings)[0]
    assert abs((event.received_at - event.event_time).total_seconds() - 30) < 0.01
    assert event.time_clamped is False


def test_timestamps_with_an_offset_or_none_are_read_as_the_moment_they_name(api, redis_client, settings):
    t = tenant(api)
    moment = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
    in_paris = moment.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": "paris", "user_id": "u", "timestamp": in_paris},
            {"type": "track", "name": "naive", "user_id": "u", "timestamp": moment.replace(tzinfo=None).isoformat()},
            {
                "type": "track",
                "name": "skewed",
                "user_id": "u",
                "timestamp": in_paris,
                "sent_at": iso(moment + dt.timedelta(seconds=10)),
            },
        ],
    )
    assert answer.json["accepted"] == 3, answer.text
    events = {event.name: event for event in streamed(redis_client, settings)}
    assert events["paris"].event_time == events["naive"].event_time == moment
    skewed = events["skewed"]
    assert skewed.received_at - skewed.event_time == dt.timedelta(seconds=10)


def test_future_events_are_clamped_and_flagged_and_old_ones_refused(api, redis_client, settings):
    t = tenant(api)
    now = dt.datetime.now(dt.UTC)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": "future", "user_id": "u", "timestamp": iso(now + dt.timedelta(days=2))},
            {"type": "track", "name": "ancient", "user_id": "u", "timestamp": iso(now - dt.timedelta(days=400))},
        ],
    )
    assert answer.json["accepted"] == 1 and "older than 30 days" in answer.json["rejected"][0]["reason"]
    event = streamed(redis_client, settings)[0]
    assert event.time_clamped is True and event.event_time == event.received_at


def test_sessions_are_derived_per_identity_with_a_30_minute_timeout(api, redis_client, settings):
    t = tenant(api)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    times = [
        start,
        start + dt.timedelta(minutes=20),
        start + dt.timedelta(minutes=55),
        start + dt.timedelta(minutes=60),
    ]
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": f"e{i}", "user_id": "u", "timestamp": iso(moment)}
            for i, moment in enumerate(times)
        ]
        + [
            {"type": "track", "name": "other", "user_id": "v", "timestamp": iso(start)},
            {"type": "track", "name": "own", "user_id": "u", "session_id": "mine", "timestamp": iso(start)},
        ],
    )
    sessions = {e.name: e.session_id for e in streamed(redis_client, settings)}
    assert sessions["e0"] == sessions["e1"] != sessions["e2"] == sessions["e3"]
    assert sessions["other"] not in (sessions["e0"], sessions["e2"])
    assert sessions["own"] == "mine"
    # A later request continues the open session.
    api.post(
        "/v1/events",
        auth=t.write_key,
        json={"type": "track", "name": "later", "user_id": "u", "timestamp": iso(times[-1] + dt.timedelta(minutes=10))},
    )
    assert streamed(redis_client, settings)[-1].session_id == sessions["e3"]


def sessions_by_gaps(times: dict[str, tuple[str, dt.datetime]], timeout: int) -> set[frozenset[str]]:
    """Sessions computed independently: each identity's events in time order, a new session after a
    gap of more than `timeout` seconds. `times` maps a message id to (identity, event time)."""
    sessions: list[set[str]] = []
    last: dict[str, tuple[dt.datetime, set[str]]] = {}
    for message_id, (identity, moment) in sorted(times.items(), key=lambda item: item[1][1]):
        previous = last.get(identity)
        if previous is None or (moment - previous[0]).total_seconds() > timeout:
            previous = (moment, set())
            sessions.append(previous[1])
        previous[1].add(message_id)
        last[identity] = (moment, previous[1])
    return {frozenset(session) for session in sessions}


def test_sessions_follow_event_time_in_shuffled_and_late_batches(api, redis_client, settings):
    """Each of three people has four sessions of six events five minutes apart, three hours apart, and
    one lone event (a bounce). The newest two sessions' even events come first, shuffled; then, late,
    shuffled, everything else: the older sessions and the odd events between the first request's.
    Sessions, their sizes and their durations equal those computed from the sorted event times."""
    t = tenant(api)
    rng = random.Random(7)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3)
    times: dict[str, tuple[str, dt.datetime]] = {}
    first, late = [], []
    for person in ("ann", "bob", "cy"):
        start = base + dt.timedelta(minutes=rng.randrange(60))
        for session in range(5):
            for index in range(6 if session < 4 else 1):
                moment = start + dt.timedelta(hours=3 * session, minutes=5 * index)
                message_id = f"{person}-{session}-{index}"
                times[message_id] = (person, moment)
                event = {"type": "page", "user_id": person, "message_id": message_id, "timestamp": iso(moment)}
                (first if session in (2, 3) and index % 2 == 0 else late).append(event)
    rng.shuffle(first)
    rng.shuffle(late)
    for batch in (first, late):
        assert api.post("/v1/events", auth=t.write_key, json=batch).json["accepted"] == len(batch)

    derived: dict[str, set[str]] = {}
    for event in streamed(redis_client, settings):
        derived.setdefault(event.session_id, set()).add(event.message_id)
    expected = sessions_by_gaps(times, settings.session_timeout_seconds)
    assert {frozenset(ids) for ids in derived.values()} == expected
    assert len(expected) == 15  # 3 people x (4 sessions + a bounce)

    def shape(sessions) -> list[tuple[int, float]]:
        spans = [[times[message_id][1] for message_id in session] for session in sessions]
        return sorted((len(span), (max(span) - min(span)).total_seconds()) for span in spans)

    assert shape(derived.values()) == shape(expected) == sorted([(6, 1500.0)] * 12 + [(1, 0.0)] * 3)


def test_one_batch_spanning_days_out_of_order_makes_a_session_a_day(api, redis_client, settings):
    t = tenant(api)
    now = dt.datetime.now(dt.UTC)
    days = {"dec2": 4, "dec5": 1, "dec3": 3}
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": name, "user_id": "u", "timestamp": iso(now - dt.timedelta(days=ago))}
            for name, ago in days.items()
        ],
    )
    assert len({event.session_id for event in streamed(redis_client, settings)}) == 3
    # An event of Dec 3, a minute later, arriving afterwards, joins Dec 3's session and no other.
    api.post(
        "/v1/events",
        auth=t.write_key,
        json={
            "type": "track",
            "name": "dec3b",
            "user_id": "u",
            "timestamp": iso(now - dt.timedelta(days=3, minutes=-1)),
        },
    )
    sessions = {event.name: event.session_id for event in streamed(redis_client, settings)}
    assert sessions["dec3b"] == sessions["dec3"] and len(set(sessions.values())) == 3


def test_a_batch_larger_than_one_session_lookup_keeps_each_identity_in_its_session(
    with_settings, redis_client, settings
):
    """Session states are read 1,000 keys at a time: events on both sides of a chunk's edge, and of
    one identity across it, come out right."""
    api = with_settings(ingest_max_batch=2_500)
    t = tenant(api)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    batch = [
        {
            "type": "track",
            "name": f"n{i}",
            "user_id": f"u{i % 1_100}",
            "timestamp": iso(start + dt.timedelta(seconds=i)),
        }
        for i in range(2_200)
    ]
    assert api.post("/v1/events", auth=t.write_key, json=batch).json["accepted"] == 2_200
    sessions = {e.name: e.session_id for e in streamed(redis_client, settings)}
    assert all(sessions[f"n{i}"] == sessions[f"n{i + 1_100}"] for i in range(1_100))
    assert len(set(sessions.values())) == 1_100
    assert {uuid.UUID(session).version for session in sessions.values()} == {7}


def test_country_from_a_maxmind_database(with_settings, redis_client, settings, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City")
    writer.insert_network(
        IPSet(["198.51.100.0/24"]),
        {
            "country": {"iso_code": "JP", "names": {"en": "Japan"}},
            "subdivisions": [{"iso_code": "13", "names": {"en": "Tokyo"}}],
            "city": {"names": {"en": "Tokyo"}},
        },
    )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    api = with_settings(geoip_database_path=str(path))
    t = tenant(api)
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": "a", "user_id": "u", "context": {"ip": "198.51.100.7"}},
            {"type": "track", "name": "b", "user_id": "u", "context": {"ip": "192.0.2.1"}},
        ],
    )
    located, unknown = streamed(redis_client, settings)
    assert (located.country, located.region, located.city) == ("JP", "13", "Tokyo")
    assert (unknown.country, unknown.city) == ("", "")


def test_web3_and_payment_fields(api, redis_client, settings):
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {
                "type": "transaction",
                "user_id": "u",
                "chain_id": 1,
                "tx_hash": "0x" + "F" * 64,
                "from": "0x" + "A" * 40,
                "to": "0x" + "B" * 40,
                "value": 1_000_000_000_000_000_000_000,
                "token": "ETH",
                "status": "confirmed",
            },
            {"type": "signature", "user_id": "u"},
            {
                "type": "payment",
                "user_id": "u",
                "payment_id": "pay_1",
                "status": "started",
                "amount": 19.99,
                "currency": "eur",
                "method": "card",
            },
            {"type": "chain_changed", "user_id": "u", "chain_id": "10"},
        ],
    )
    assert answer.json["accepted"] == 4, answer.text
    tx, signature, payment, chain = streamed(redis_client, settings)
    assert tx.tx_value == "1000000000000000000000" and tx.tx_from == "0x" + "a" * 40 and tx.status == "confirmed"
    assert signature.status == "requested"
    assert (payment.amount, payment.currency, payment.payment_method) == ("19.99", "EUR", "card")
    assert chain.chain_id == "10"


def test_native_fields_sent_as_null_count_as_absent(api, redis_client, settings):
    t = tenant(api)
    optional = [
        "name",
        "message_id",
        "session_id",
        "group_id",
        "previous_id",
        "timestamp",
        "sent_at",
        "properties",
        "traits",
        "context",
        "wallet_address",
        "tx_hash",
        "from",
        "to",
        "contract_address",
        "value",
        "token",
        "status",
        "payment_id",
        "amount",
        "currency",
        "method",
    ]
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json={"type": "identify", "user_id": "u", "anonymous_id": None, "chain_id": None, **dict.fromkeys(optional)},
    )
    assert answer.json["accepted"] == 1, answer.text
    (event,) = streamed(redis_client, settings)
    assert (
        event.name,
        event.anonymous_id,
        event.chain_id,
        event.tx_hash,
        event.currency,
        event.payment_method,
        event.properties,
    ) == ("", "", "", "", "", "", {})
    assert event.message_id  # made at ingest


NATIVE_OPTIONAL = [
    (field, wire_name)
    for field, wire_name in zip(
        wire.NativeEvent.__struct_fields__, wire.NativeEvent.__struct_encode_fields__, strict=False
    )
    if field not in ("type", "timestamp", "sent_at")
]


@pytest.mark.parametrize(("field", "wire_name"), NATIVE_OPTIONAL)
def test_every_native_field_reads_as_incoming_would_have_it(field, wire_name):
    """NativeEvent.__post_init__ names its fields one by one: a field added without a line there
    would reach enrichment as None or a number."""
    (incoming,) = [f for f in msgspec.structs.fields(wire.Incoming) if f.name == field]
    default = incoming.default_factory() if incoming.default is msgspec.NODEFAULT else incoming.default
    as_null = msgspec.json.decode(json.dumps({"type": "track", wire_name: None}), type=wire.NativeEvent)
    assert getattr(as_null, field) == default
    try:
        as_number = msgspec.json.decode(json.dumps({"type": "track", wire_name: 7}), type=wire.NativeEvent)
    except msgspec.ValidationError:
        return  # a field that only takes text or objects
    assert getattr(as_number, field) == "7"


def test_native_ids_and_amounts_sent_as_numbers_become_text(api, redis_client, settings):
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "alias", "user_id": 42, "previous_id": 7, "anonymous_id": 9, "session_id": 1001, "group_id": 3},
            {"type": "payment", "user_id": "u", "payment_id": "p", "status": "completed", "amount": 5, "value": 2.5},
        ],
    )
    assert answer.json["accepted"] == 2, answer.text
    alias, payment = streamed(redis_client, settings)
    assert (alias.user_id, alias.previous_id, alias.anonymous_id, alias.session_id, alias.group_id) == (
        "42",
        "7",
        "9",
        "1001",
        "3",
    )
    assert (payment.amount, payment.tx_value) == ("5", "2.5")


def test_native_top_level_fields_it_does_not_define_are_ignored(api, redis_client, settings):
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
        json={"type": "track", "name": "a", "user_id": "u", "country": "FR", "city": "Paris", "from_browser": False},
    )
    assert answer.json["accepted"] == 1, answer.text
    (event,) = streamed(redis_client, settings)
    assert (event.country, event.city) == ("", "")
    assert event.os == "Linux"  # still treated as sent from the browser that made the request


def test_members_send_test_events_viewers_do_not(api, redis_client, settings):
    t = tenant(api)
    member = api.joined(t.company_id, "member")
    viewer = api.joined(t.company_id, "viewer")
    sent = api.post(f"/v1/companies/{t.company_id}/test-events", auth=member)
    assert sent.status_code == 202
    assert api.post(f"/v1/companies/{t.company_id}/test-events", auth=viewer).status_code == 403
    event = streamed(redis_client, settings)[0]
    assert event.name == "Test Event" and event.message_id == sent.json["message_id"]


def test_ingest_keeps_working_with_cached_keys_while_postgres_is_down(api, settings, redis_client):
    from models.db import open_database

    t = tenant(api)
    event = {"type": "track", "name": "x", "user_id": "u"}
    assert api.post("/v1/events", auth=t.write_key, json=event).status_code == 200  # the key is now cached
    open_database(f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    try:
        answer = api.post("/v1/events", auth=t.write_key, json=event)
        dashboard = api.get("/v1/me", auth=t.owner)
    finally:
        open_database(settings.database_url)
    assert answer.status_code == 200
    assert dashboard.status_code == 503 and dashboard.json["error"]["code"] == "unavailable"
    assert len(streamed(redis_client, settings)) == 2


def test_a_number_beyond_64_bits_rejects_its_event_not_the_batch(api, redis_client, settings):
    """Found by the fuzz suite: such a number decoded fine but could not be written to the stream,
    so the whole request answered 500."""
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "track", "name": "fine", "user_id": "u"},
            {"type": "track", "name": "huge", "user_id": "u", "properties": {"n": 2**70}},
            {"type": "track", "name": "also fine", "user_id": "u"},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json["accepted"] == 2
    assert [(r["index"], "64-bit" in r["reason"]) for r in answer.json["rejected"]] == [(1, True)]
    assert sorted(e.name for e in streamed(redis_client, settings)) == ["also fine", "fine"]
    alone = api.post(
        "/v1/events", auth=t.write_key, json={"type": "track", "name": "huge", "properties": {"n": -(2**70)}}
    )
    assert alone.status_code == 400 and alone.json["error"]["code"] == "no_valid_events"
