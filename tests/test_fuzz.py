"""Bad input, generated: schemathesis against /openapi.json (authenticated as owner, read key or write
key, and not at all), bodies carrying invalid UTF-8 inside a JSON string, times out of every store's
range in the query parameters and in events, and hypothesis on the three event parsers.

No generated request gets a 5xx; every error has the one JSON shape; an ingest request adds to the
streams exactly the events it says it accepted (nothing rejected is stored, nothing accepted lost);
an event the parsers accept survives the stream encoding unchanged. `FUZZ_CASES` sets how many API
cases run (1,000 in `make test`; `make fuzz` runs 10,000).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest import wire
from ingest.enrich import Enricher, Rejected, RequestInfo
from ingest.formats import Items, build_legacy, build_native, build_segment
from models.redis_streams import decode_entry, encode_entry
from tests.ingest_helpers import CHROME, streamed, tenant

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "1000"))
# Each API test runs a quarter of FUZZ_CASES generated requests against the in-process app.
API_CASES = hypothesis_settings(
    max_examples=FUZZ_CASES // 4, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


INGEST_PATHS = (
    "/v1/events",
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/sdk/event",
)
# Byte sequences that are not UTF-8: a lone continuation byte, bytes never valid, a truncated or
# overlong sequence, an encoded surrogate; and any others hypothesis finds.
INVALID_UTF8 = st.sampled_from(
    [b"\xff", b"\xfe\xff", b"\x80", b"\xc3\x28", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc", b"\xc0\xaf", b"\xed\xa0\x80"]
) | st.binary(min_size=1, max_size=6).filter(lambda raw: not is_utf8(raw))
ZONES = st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"])
# Dates and times before 1970 or after 2100, where ClickHouse's DateTime and Python's arithmetic
# across time zones both end, and a few inside for contrast.
DATES = st.one_of(
    st.dates(max_value=dt.date(1969, 12, 31)),
    st.dates(min_value=dt.date(2101, 1, 1)),
    st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31)),
)
TIMES = st.builds(
    lambda date, hour, offset: f"{date.isoformat()}T{hour:02d}:59:59{offset}",
    DATES,
    st.integers(0, 23),
    st.sampled_from(["", "Z", "+14:00", "-12:00", "-05:00"]),
)
MARKER = "\u2603fuzz-invalid-bytes-here\u2603"
HOSTILE = st.sampled_from(
    [
        "'; DROP TABLE events; --",
        "<script>alert(1)</script>",
        "\u0000",
        "\ud7ff\ue000",
        "{{7*7}}",
        "../../etc/passwd",
        "0x" + "f" * 40,
        "-1",
        "1e309",
        "NaN",
        " " * 300,
    ]
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | HOSTILE | TIMES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "name",
    "event",
    "eventName",
    "user_id",
    "userId",
    "anonymous_id",
    "anonymousId",
    "message_id",
    "messageId",
    "timestamp",
    "sent_at",
    "properties",
    "traits",
    "context",
    "wallet_address",
    "chain_id",
    "transaction_hash",
    "tx_hash",
    "contract_address",
    "value",
    "token",
    "status",
    "payment_id",
    "amount",
    "currency",
    "method",
    "session_id",
    "country",
    "ip_address",
    "previousId",
    "groupId",
    "category",
]
TYPES = st.sampled_from(
    [
        "track",
        "page",
        "screen",
        "identify",
        "group",
        "alias",
        "wallet_connect",
        "transaction",
        "payment",
        "signature",
        "chain_changed",
        "TRACK",
        "nonsense",
    ]
)
ENDS_THE_RUN = {
    ("DELETE", "/v1/companies/{company_id}"),
    ("POST", "/v1/auth/logout"),
    ("POST", "/v1/auth/password"),
    ("POST", "/v1/companies/{company_id}/transfer"),
}
EVENT_LIKE = st.fixed_dictionaries({"type": TYPES}, optional={field: ANY_JSON for field in FIELDS})


@pytest.mark.parametrize("who", ["anonymous", "owner", "read key", "write key"])
def test_generated_requests_never_fail_the_server_and_ingest_stores_exactly_what_it_accepts(
    client, api, settings, redis_client, who
):
    t = tenant(api)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    credential = {"anonymous": None, "owner": t.owner.access_token, "read key": t.read_key, "write key": t.write_key}[
        who
    ]
    if credential:  # what would end the run's own login or company early
        operations = [op for op in operations if (op.method.upper(), op.path) not in ENDS_THE_RUN]
    seen: Counter = Counter()

    @API_CASES
    @given(st.data())
    def one_case(data):
        operation = data.draw(st.sampled_from(operations), label="operation")
        case = data.draw(operation.as_strategy(), label="case")
        if "company_id" in (case.path_parameters or {}) and data.draw(st.integers(0, 4), label="own company"):
            case.path_parameters["company_id"] = t.company_id
        headers = {"User-Agent": CHROME, **({"Authorization": f"Bearer {credential}"} if credential else {})}
        before = len(streamed(redis_client, settings)) if operation.path in INGEST_PATHS else None
        response = case.call(headers=headers)
        seen[response.status_code] += 1
        assert response.status_code < 500, (
            operation.method,
            operation.path,
            who,
            response.status_code,
            response.text[:500],
        )
        if response.status_code >= 400 and operation.path not in ("/docs", "/app"):
            assert set(response.json()["error"]) == {"code", "message", "details"}, response.text[:500]
        if before is not None:
            accepted = response.json().get("accepted", 0) if response.status_code == 200 else 0
            assert len(streamed(redis_client, settings)) - before == accepted

    one_case()
    print(who, sorted(seen.items()))
    assert sum(seen.values()) >= FUZZ_CASES // 4


def assert_clean_answer(status: int, body: bytes, what) -> None:
    """No 5xx, and an error in the one JSON shape."""
    assert status < 500, (what, status, body[:500])
    if status >= 400:
        assert set(msgspec.json.decode(body)["error"]) == {"code", "message", "details"}, (what, body[:500])


def with_invalid_bytes(body: object, invalid: bytes, data) -> bytes:
    """`body` encoded as JSON with `invalid` inside one of its strings (one it has, or a new field)."""
    if not isinstance(body, dict):
        body = {"name": body}
    strings = sorted(key for key, value in body.items() if isinstance(value, str))
    key = data.draw(st.sampled_from(strings), label="field") if strings else "name"
    encoded = msgspec.json.encode({**body, key: MARKER})
    return encoded.replace(msgspec.json.encode(MARKER)[1:-1], invalid, 1)


def test_invalid_utf8_inside_any_body_is_refused_cleanly(client, api, settings, redis_client):
    """Every operation with a JSON body, and every ingest path, with invalid bytes inside a string of a
    generated body: a 4xx in the JSON shape, never a 500; ingest stores exactly what it says it accepted."""
    t = tenant(api)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.app)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.method.upper() in ("POST", "PATCH") and (op.method.upper(), op.path) not in ENDS_THE_RUN
    ]

    @API_CASES
    @given(st.data())
    def one_case(data):
        operation = data.draw(st.sampled_from(operations), label="operation")
        case = data.draw(operation.as_strategy(), label="case")
        if "company_id" in (case.path_parameters or {}):
            case.path_parameters["company_id"] = t.company_id
        body = with_invalid_bytes(case.body, data.draw(INVALID_UTF8, label="bytes"), data)
        credential = t.write_key if operation.path in INGEST_PATHS else t.owner.access_token
        before = len(streamed(redis_client, settings)) if operation.path in INGEST_PATHS else None
        answer = client.simulate_request(
            operation.method.upper(),
            case.formatted_path,
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {credential}", "User-Agent": CHROME},
        )
        assert_clean_answer(answer.status_code, answer.content, (operation.method, operation.path))
        if before is not None:
            accepted = answer.json.get("accepted", 0) if answer.status_code == 200 else 0
            assert len(streamed(redis_client, settings)) - before == accepted

    one_case()


def test_times_out_of_range_in_any_query_are_refused_cleanly(client, api):
    """Every read that takes a period (analytics, drilldowns, raw events) with generated dates and times
    from year 1 to 9999 in several time zones: a 400 naming the parameter or an answer, never a 500."""
    t = tenant(api)
    paths = sorted(
        path.replace("{company_id}", t.company_id)
        for path, operations in client.simulate_get("/openapi.json").json["paths"].items()
        if "get" in operations
        and "{" not in path.replace("{company_id}", "")
        and any(part in path for part in ("/analytics/", "/drilldowns/", "/events"))
    )
    assert len(paths) >= 8, paths

    @API_CASES
    @given(st.data())
    def one_case(data):
        path = data.draw(st.sampled_from(paths), label="path")
        params = {
            "from": data.draw(DATES, label="from").isoformat(),
            "to": data.draw(DATES, label="to").isoformat(),
            "tz": data.draw(ZONES, label="tz"),
            "since": data.draw(TIMES, label="since"),
            "until": data.draw(TIMES, label="until"),
            "metric": "events",
            "dimension": "page_path",
            "steps": "a,b",
        }
        answer = client.simulate_get(path, params=params, headers={"Authorization": f"Bearer {t.read_key}"})
        assert_clean_answer(answer.status_code, answer.content, (path, params))
        if answer.status_code == 400 and answer.json["error"]["code"] == "invalid_parameter":
            assert any(name in answer.json["error"]["message"] for name in params), answer.text

    one_case()


REQUEST = RequestInfo(
    company_id="00000000-0000-0000-0000-000000000001",
    received_at=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC),
    sent_at=None,
    user_agent=CHROME,
    ip="203.0.113.9",
    country="",
    request_id="fuzz",
)
BUILDERS = {
    "native": build_native,
    "legacy": build_legacy,
    "segment": lambda items, raw: build_segment(None, items, raw),
}


@pytest.mark.parametrize("wire_format", sorted(BUILDERS))
@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=EVENT_LIKE | ANY_JSON)
def test_parsers_accept_or_reject_cleanly_and_what_they_accept_survives_the_stream(settings, wire_format, event):
    raw = msgspec.json.encode(event)
    try:
        built = Enricher(settings).build(BUILDERS[wire_format](Items([raw], wire_format), raw), REQUEST)
    except (Rejected, msgspec.ValidationError, msgspec.DecodeError):
        return  # refused with a reason the answer carries
    assert isinstance(built.message_id, str) and built.message_id
    assert decode_entry(encode_entry(REQUEST.company_id, [built], "fuzz")) == [built]


def test_wire_structs_refuse_what_is_not_an_object(settings):
    for raw in (b"1", b"null", b'"x"', b"[]"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=wire.NativeEvent)
