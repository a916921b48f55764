"""Bad input, generated: schemathesis against /openapi.json (authenticated as owner, read key or write
key, and not at all) and hypothesis on the three event parsers.

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
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | HOSTILE,
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

    @hypothesis_settings(
        max_examples=FUZZ_CASES // 4, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
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
