"""Dramatiq middleware for the worker process's life: opens Postgres when a worker process boots (and
sets the slow-query thresholds; each job names itself to the slow-query log),
serves its Prometheus metrics, logs one structured "ready" line, keeps a heartbeat in Redis that the
health check reads, and tells the stream pumps when the process begins to shut down."""

from __future__ import annotations

import logging
import os
import time

import dramatiq

from adtivity import querymetrics
from adtivity.logs import log_event
from adtivity.metrics import serve
from adtivity.settings import Settings
from models import redis_keys
from models.db import open_database
from models.redis_client import redis_client
from workers.pump import STOPPING

log = logging.getLogger(__name__)


class Lifecycle(dramatiq.Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        querymetrics.configure(self.settings)
        open_database(self.settings.database_url, max_age=self.settings.database_max_connection_age_seconds)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        """A slow query names the job that ran it."""
        querymetrics.origin.set(querymetrics.Origin(f"job {message.actor_name}", message.message_id))

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        client = redis_client(self.settings, timeout=2)
        client.set(redis_keys.process_heartbeat("worker"), time.time())
        serve(self.settings, self.settings.worker_metrics_port, "worker")
        log_event(log, "ready", pid=os.getpid(), queues=sorted(broker.get_declared_queues()))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        STOPPING.set()
        log_event(log, "stopping", pid=os.getpid())
