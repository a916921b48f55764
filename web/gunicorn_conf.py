"""gunicorn settings for the web process (`gunicorn -c web/gunicorn_conf.py "web.app:get_app()"`).

Reads PORT, WEB_WORKERS, WEB_THREADS, WEB_KEEPALIVE_REQUESTS and WEB_REUSE_PORT through Settings.
Sets up prometheus-client's multiprocess directory so /metrics adds up every worker, and removes a
dead worker's files when it exits.
"""
import os
import shutil
import tempfile

from adtivity.settings import Settings

_settings = Settings.from_env()
bind = f"127.0.0.1:{_settings.port}" if _settings.is_development else f"0.0.0.0:{_settings.port}"
workers = _settings.web_workers
# Threaded workers keep client connections alive (sync workers close each one) and overlap the
# Redis round trip of one request with the parsing of another.
worker_class = "gthread" if _settings.web_threads > 1 else "sync"
threads = _settings.web_threads
keepalive = 30
# One listening socket a worker, so the kernel spreads connections over the workers (.env.example).
reuse_port = _settings.web_reuse_port
graceful_timeout = 10
accesslog = None
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="adtivity-web-metrics-")
else:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


# Only now: prometheus-client picks its multiprocess mode when first imported, from this variable.
from prometheus_client import multiprocess  # noqa: E402


def pre_request(worker, req):
    """Closes a kept-alive connection after WEB_KEEPALIVE_REQUESTS requests (this one is answered with
    Connection: close): gthread workers do not share connections, so without it the connections a
    client opened at once can all stay on one worker while the others idle."""
    if req.req_number >= _settings.web_keepalive_requests:
        req.must_close = True


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
