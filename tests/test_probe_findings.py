"""What probing the running system found, each refused with a clear 400 instead of a 500: invalid
UTF-8 inside JSON strings, and times outside what the stores can hold (in a parameter or a cursor)."""

from __future__ import annotations

import base64

import msgspec
import pytest

from tests.ingest_helpers import tenant

CREDENTIALS = b'{"email": "a\xff\xfe@example.com", "password": "whatever it is"}'


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/auth/login", CREDENTIALS),
        ("/v1/auth/register", CREDENTIALS),
        ("/v1/auth/refresh", b'{"refresh_token": "\xff\xfe"}'),
    ],
)
def test_invalid_utf8_in_an_api_body_is_a_400(api, path, body):
    answer = api.post(path, body=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] == "invalid_json"


def test_invalid_utf8_in_an_event_rejects_that_event_alone(api):
    t = tenant(api)
    good = b'{"type": "track", "name": "ok", "user_id": "u"}'
    bad = b'{"type": "track", "name": "\xff\xfe", "user_id": "u"}'
    headers = {"Content-Type": "application/json"}
    answer = api.post("/v1/events", auth=t.write_key, body=b"[" + good + b"," + bad + b"]", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json["accepted"] == 1 and [r["index"] for r in answer.json["rejected"]] == [1]
    alone = api.post("/v1/events", auth=t.write_key, body=bad, headers=headers)
    assert alone.status_code == 400 and alone.json["error"]["code"] in ("invalid_json", "no_valid_events")
    segment = api.post("/v1/batch", auth=t.write_key, body=b'{"batch": [' + bad + b"]}", headers=headers)
    assert segment.status_code == 400, segment.text


@pytest.mark.parametrize(
    "endpoint, params, named",
    [
        ("analytics/overview", {"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Tokyo"}, "to"),
        ("analytics/overview", {"from": "0001-01-01", "to": "2026-01-02", "tz": "Asia/Tokyo"}, "from"),
        ("analytics/overview", {"from": "2026-01-01", "to": "9999-12-31"}, "to"),
        ("drilldowns/retention", {"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Tokyo"}, "to"),
        ("events", {"since": "0001-01-01T00:00:00"}, "since"),
        ("events", {"until": "9999-12-31T23:59:59-05:00"}, "until"),
    ],
)
def test_times_out_of_range_are_a_400_naming_the_parameter(api, endpoint, params, named):
    t = tenant(api)
    answer = api.get(f"/v1/companies/{t.company_id}/{endpoint}", auth=t.read_key, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] == "invalid_parameter" and named in answer.json["error"]["message"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00", "9999-12-31T23:59:59"])
def test_a_cursor_out_of_range_is_a_400(api, moment):
    t = tenant(api)
    cursor = base64.urlsafe_b64encode(msgspec.json.encode([moment, "x"])).decode().rstrip("=")
    answer = api.get(f"/v1/companies/{t.company_id}/events", auth=t.read_key, params={"cursor": cursor})
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "path",
    [
        "/app",
        "/app/reset?token=abc",
        "/app/invite?token=abc",
        "/app/assets/index.html",
        "/app/assets/api-docs.html",
        "/docs",
    ],
)
def test_every_html_answer_carries_the_content_security_policy(api, path):
    """`/app/assets/index.html` served the dashboard without its policy and `/docs` had none: now every
    HTML answer carries it, and no page needs an inline script or style that the policy would block."""
    answer = api.get(path)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in answer.text and "<style" not in answer.text and " style=" not in answer.text
