"""The web's gunicorn worker class: gunicorn's gevent worker, with a prompt graceful stop and its own
refusals in the app's JSON error shape.

gunicorn's gevent worker, told to stop, lets each connection finish its request and then waits up
to graceful_timeout for every connection to close, including kept-alive ones that sit waiting for
a next request which will never come: SDKs and proxies keep theirs open, so each restart of the web
took the whole graceful timeout. Here a connection waiting for its next request is closed as soon
as the stop begins, as its keep-alive timeout would have closed it; requests under way still finish
(and their connections close after the answer, as gunicorn does once stopping).

A request gunicorn refuses before the app sees it (a malformed request line or header such as a CR
inside a value, a request line over 4094 bytes: 414, header fields over 8190 bytes or more than 100:
431, a transfer coding it does not read: 501) was answered with gunicorn's HTML page. This worker
answers those with `{"error": {"code", "message", "details"}}` like every other error.
"""

from __future__ import annotations

from contextlib import contextmanager

import gevent
import msgspec
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

REFUSAL_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
}


def write_json_error(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's `util.write_error`, in the app's error shape: what gunicorn refused and why (a 500
    of its own says nothing more, as the app's do)."""
    code = REFUSAL_CODES.get(status, "internal_error")
    if code == "internal_error":
        message = "an internal error occurred; it has been logged"
    body = msgspec.json.encode({"error": {"code": code, "message": message or reason, "details": None}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class PromptStopGeventWorker(GeventWorker):
    def init_process(self) -> None:
        self.waiting: dict[gevent.Greenlet, gevent.Timeout] = {}  # connection greenlet -> its keep-alive timeout
        # gunicorn's Worker.handle_error writes every refusal through util.write_error: in this worker
        # process, that is the JSON writer.
        util.write_error = write_json_error
        super().init_process()

    @contextmanager
    def timeout_ctx(self):
        """Around the read of a connection's next request: its keep-alive wait, ended early by a stop
        (no wait at all once stopping: a request already received is still read and answered)."""
        timeout = gevent.Timeout(self.cfg.keepalive if self.alive else 0, False)
        connection = gevent.getcurrent()
        self.waiting[connection] = timeout
        try:
            with timeout:
                yield
        finally:
            self.waiting.pop(connection, None)

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        loop = gevent.get_hub().loop
        for connection, timeout in list(self.waiting.items()):
            loop.run_callback(self.end_wait, connection, timeout)

    def end_wait(self, connection: gevent.Greenlet, timeout: gevent.Timeout) -> None:
        """In the hub, where no connection runs meanwhile: a connection still in that keep-alive wait
        ends it as its timeout would (it closes; nothing is answered). One that has since begun a
        request is left to finish it."""
        if self.waiting.get(connection) is timeout:
            connection.throw(timeout)
