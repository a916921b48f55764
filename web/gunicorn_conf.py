"""gunicorn settings for the web process (`gunicorn -c web/gunicorn_conf.py "web.app:get_app()"`).

Reads PORT, WEB_WORKERS, WEB_WORKER_CONNECTIONS, WEB_KEEPALIVE_REQUESTS and WEB_REUSE_PORT through
Settings. Sets up prometheus-client's multiprocess directory so /metrics adds up every worker, and
removes a dead worker's files when it exits. gunicorn's own log lines take the app's format.
"""

import os
import shutil
import tempfile

import gevent
from gunicorn import glogging

from adtivity.logs import log_formatter
from adtivity.settings import Settings

_settings = Settings.from_env()
bind = f"127.0.0.1:{_settings.port}" if _settings.is_development else f"0.0.0.0:{_settings.port}"
workers = _settings.web_workers
# gevent workers (gunicorn's, with a prompt graceful stop: web/gunicorn_worker.py): a greenlet a
# connection, so kept-alive SDK connections cost little, and a request waiting on Redis or Postgres
# lets the worker's other requests run. Ingest is CPU-bound Python, and with gthread's threads the
# GIL changed hands between them on every request: gevent serves 10-20% more requests/s under
# bench/ingest_throughput.py's load (docs/performance-notes.md). What would block the loop does not: psycopg2
# waits through gevent (post_fork), bcrypt runs in gevent's thread pool (accounts/security.py), sockets
# are gevent's.
worker_class = "web.gunicorn_worker.PromptStopGeventWorker"
worker_connections = _settings.web_worker_connections
keepalive = 30
# One listening socket a worker, so the kernel spreads connections over the workers (.env.example).
reuse_port = _settings.web_reuse_port
graceful_timeout = 10
accesslog = None  # the app logs each request itself (web/middleware.py)
# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): several web
# processes on a machine (tests, a benchmark beside a running system) would take it from each other,
# and nothing here uses it.
control_socket_disable = True


class StructuredLogger(glogging.Logger):
    """gunicorn's own lines (workers booting and exiting, errors outside the app) in the format of
    every other log line: one JSON object a line unless LOG_FORMAT says text."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(log_formatter(_settings, process="web"))


logger_class = StructuredLogger
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="adtivity-web-metrics-")
else:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


# Only now: prometheus-client picks its multiprocess mode when first imported, from this variable.
from prometheus_client import multiprocess  # noqa: E402


def pre_request(worker, req):
    """Closes a kept-alive connection after WEB_KEEPALIVE_REQUESTS requests (this one is answered with
    Connection: close): workers do not share connections, so without it the connections a client
    opened at once can all stay on one worker while the others idle."""
    if req.req_number >= _settings.web_keepalive_requests:
        req.must_close = True


def post_request(worker, req, environ, resp):
    """Lets the worker's other connections run after each request. A greenlet yields only where it
    would block, and one whose next request and whose Redis answer are already there never does:
    without this, a few kept-alive connections held a worker while others waited (wrk, 32
    connections: p99 460-890 ms against 61-79 ms). `sleep(0)` resumes before the loop polls sockets
    (p99 still 168-264 ms); a timer, however short, waits for that poll (p99 78-88 ms)."""
    gevent.sleep(1e-6)


def post_fork(server, worker):
    """psycopg2 is C and would block the worker's loop while Postgres answers: make it wait through gevent."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
