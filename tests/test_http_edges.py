"""The edges of HTTP against the real web process (gunicorn): chunked request bodies are read, under the
same size limit as any other, and what gunicorn itself refuses before the app sees it (a CR inside a
header, a request line or header fields over its limits) answers in the app's JSON error shape."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.ingest_helpers import tenant
from tests.processes import Process, free_port, process_env

pytestmark = pytest.mark.processes
MAX_BODY_BYTES = 4096


@pytest.fixture
def port(settings):
    process = Process("web", process_env(PORT=str(free_port()), WEB_WORKERS="1", MAX_BODY_BYTES=str(MAX_BODY_BYTES)))
    process.wait_ready()
    yield int(process.env["PORT"])
    process.stop()


def post_chunked(port: int, path: str, chunks: list[bytes], token: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection.request("POST", path, body=iter(chunks), headers=headers, encode_chunked=True)
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    return answer.status, body


def test_chunked_bodies_are_read_under_the_same_limit(api, port):
    """Go's net/http, node streams and some SDKs send a body in chunks with no Content-Length: it was
    answered 400 "the request body is empty"."""
    t = tenant(api)
    events = json.dumps([{"type": "track", "name": f"chunked {n}", "user_id": "u"} for n in range(2)]).encode()
    status, body = post_chunked(port, "/v1/events", [events[:10], events[10:30], events[30:]], t.write_key)
    assert status == 200 and body["accepted"] == 2, body
    company = json.dumps({"name": "Sent in chunks"}).encode()
    status, body = post_chunked(port, "/v1/companies", [company[:5], company[5:]], t.owner.access_token)
    assert status == 201 and body["name"] == "Sent in chunks", body
    too_large = [b'{"name": "' + b"x" * 1000] * 5 + [b'"}']
    status, body = post_chunked(port, "/v1/companies", too_large, t.owner.access_token)
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    status, body = post_chunked(port, "/v1/events", too_large, t.write_key)
    assert status == 413 and body["error"]["code"] == "payload_too_large", body


def raw_request(port: int, request: bytes) -> tuple[int, dict, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    "request_bytes, status, code",
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Probe: a\rb\r\n\r\n", 400, "bad_request"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Probe: " + b"a" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(120)) + b"\r\n",
            431,
            "headers_too_large",
        ),
        (b"GET /health HTTP/7.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ],
    ids=["cr-in-header", "long-request-line", "long-header", "too-many-headers", "unknown-http-version"],
)
def test_what_gunicorn_refuses_answers_in_the_json_error_shape(port, request_bytes, status, code):
    answered, headers, body = raw_request(port, request_bytes)
    assert answered == status and headers["content-type"] == "application/json"
    assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["details"] is None
