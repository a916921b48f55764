"""gunicorn settings for the web process (`gunicorn -c web/gunicorn_conf.py "web.app:get_app()"`).

Reads PORT and WEB_WORKERS through Settings. Sets up prometheus-client's multiprocess directory so
/metrics adds up every worker, and removes a dead worker's files when it exits.
"""
import os
import shutil
import tempfile

from prometheus_client import multiprocess

from adtivity.settings import Settings

_settings = Settings.from_env()
bind = f"127.0.0.1:{_settings.port}" if _settings.is_development else f"0.0.0.0:{_settings.port}"
workers = _settings.web_workers
graceful_timeout = 10
accesslog = None
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="adtivity-web-metrics-")
else:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
