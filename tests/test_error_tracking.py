"""Error tracking (adtivity/errortracking.py) against a local HTTP receiver that records what the real
sentry-sdk sends: a web request's unhandled error and a worker job's, with the request id, process,
environment and release; never a password, token, API key or event payload. Unset, nothing is sent."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from adtivity.errortracking import init_error_tracking
from adtivity.jobs import ROLLUP_COMPANY, Jobs, redis_broker
from tests.conftest import drop_postgres_database, make_client
from tests.helpers import Api
from tests.ingest_helpers import tenant
from tests.processes import Process, process_env, wait_for

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlc2lnbmF0dXJl"
API_KEY = "adt_w_0123456789abcdef_" + "s" * 43


class Receiver:
    """Sentry's envelope endpoint on loopback: keeps every event (an envelope item of type "event")."""

    def __init__(self) -> None:
        received = self.events = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                lines = body.split(b"\n")
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    if json.loads(header).get("type") == "event":
                        received.append(json.loads(payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    sentry_sdk.init()  # a client with no DSN: this process sends nothing any more
    made.close()


def test_an_unhandled_web_error_is_sent_scrubbed_with_its_request_id(settings, receiver):
    """A read replica without the schema (a real misconfiguration) fails the analytics read: a 500,
    and one event with the request's id, the process, environment and release; the request's token,
    body and cookies stay here."""
    replica = settings.database_url + "_empty"
    drop_postgres_database(replica)
    from models.db import ensure_database_exists, open_read_database

    ensure_database_exists(replica)
    traced = dataclasses.replace(settings, sentry_dsn=receiver.dsn, sentry_release="adtivity@test")
    try:
        assert init_error_tracking(traced, process="web")
        api = Api(make_client(dataclasses.replace(traced, database_read_url=replica)))
        t = tenant(api)
        answer = api.get(
            f"/v1/companies/{t.company_id}/analytics/overview",
            auth=t.read_key,
            headers={"X-Request-Id": "req-for-sentry-1", "Cookie": f"session={JWT}"},
        )
        assert answer.status_code == 500
        sentry_sdk.flush(5)
    finally:
        open_read_database("")
        drop_postgres_database(replica)
    wait_for(lambda: receiver.events, 5, "the event")
    [event] = receiver.events
    assert event["tags"]["request_id"] == "req-for-sentry-1" and event["tags"]["process"] == "web"
    assert (event["environment"], event["release"]) == ("test", "adtivity@test")
    sent = json.dumps(event)
    assert "UndefinedTable" in sent or "ProgrammingError" in sent
    assert t.read_key not in sent and JWT not in sent  # the Authorization header and the cookie's value


def test_secrets_in_messages_and_fields_are_cut_out(settings, receiver):
    init_error_tracking(dataclasses.replace(settings, sentry_dsn=receiver.dsn), process="scheduler")
    password = "-".join(["hunter2", "long"])  # made here: the event carries this file's source lines
    import logging

    try:
        raise ValueError(f"refused {API_KEY} with Bearer {JWT}")
    except ValueError:
        logging.getLogger("scheduler").error(
            "job failed", exc_info=True, extra={"fields": {"password": password, "user": "u1"}}
        )
    sentry_sdk.flush(5)
    wait_for(lambda: receiver.events, 5, "the event")
    sent = json.dumps(receiver.events)
    assert API_KEY not in sent and JWT not in sent and password not in sent
    assert "refused [redacted] with Bearer [redacted]" in sent and receiver.events[0]["tags"]["process"] == "scheduler"


@pytest.mark.processes
def test_a_failing_worker_job_is_sent_from_the_worker_process(settings, receiver):
    worker = Process("worker", process_env(SENTRY_DSN=receiver.dsn))
    try:
        worker.wait_ready()
        Jobs(redis_broker(settings)).enqueue(ROLLUP_COMPANY, "not-a-company-id")
        wait_for(lambda: receiver.events, 30, "the worker's event")
    finally:
        worker.stop()
    event = receiver.events[0]
    assert event["tags"]["process"] == "worker"
    assert any(value["type"] == "ValueError" for value in event["exception"]["values"])


def test_without_a_dsn_nothing_is_set_up(settings):
    assert init_error_tracking(dataclasses.replace(settings, sentry_dsn=""), process="web") is False
