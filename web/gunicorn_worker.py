"""The web's gunicorn worker class: gunicorn's gevent worker, with a prompt graceful stop.

gunicorn's gevent worker, told to stop, lets each connection finish its request and then waits up
to graceful_timeout for every connection to close, including kept-alive ones that sit waiting for
a next request which will never come: SDKs and proxies keep theirs open, so each restart of the web
took the whole graceful timeout. Here a connection waiting for its next request is closed as soon
as the stop begins, as its keep-alive timeout would have closed it; requests under way still finish
(and their connections close after the answer, as gunicorn does once stopping).
"""

from __future__ import annotations

from contextlib import contextmanager

import gevent
from gunicorn.workers.ggevent import GeventWorker


class PromptStopGeventWorker(GeventWorker):
    def init_process(self) -> None:
        self.waiting: dict[gevent.Greenlet, gevent.Timeout] = {}  # connection greenlet -> its keep-alive timeout
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
