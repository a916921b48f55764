"""Leadership among scheduler replicas: one holds a Redis lease and schedules; the others stand by
and take over within SCHEDULER_LEASE_SECONDS + SCHEDULER_LEADER_CHECK_SECONDS of the leader's death."""

from __future__ import annotations

import logging
import os
import socket

import redis

from adtivity.lease import Lease
from adtivity.logs import log_event
from adtivity.metrics import SCHEDULED
from models import redis_keys
from models.redis_client import UNAVAILABLE

log = logging.getLogger("scheduler.leader")


class Leadership:
    def __init__(self, client: redis.Redis, *, lease_seconds: float) -> None:
        self.lease = Lease(
            client,
            redis_keys.SCHEDULER_LEADER,
            ttl_seconds=lease_seconds,
            holder=f"{socket.gethostname()}:{os.getpid()}",
        )
        self.leading = False

    def check(self) -> bool:
        """Renews the lease if this replica leads, else tries to take it; says whether it leads now."""
        try:
            leading = self.lease.renew() if self.leading else self.lease.acquire()
        except (redis.RedisError, *UNAVAILABLE) as error:
            log_event(log, "leadership unknown: redis unreachable", level=logging.WARNING, error=type(error).__name__)
            leading = False
        if leading != self.leading:
            log_event(log, "leading" if leading else "standing by", holder=self.lease.token.rsplit(":", 1)[0])
        self.leading = leading
        return leading

    def resign(self) -> None:
        if self.leading:
            self.lease.release()
            self.leading = False

    def only_when_leading(self, job):
        """Wraps a job so that standby replicas skip it."""

        def run_if_leading() -> None:
            if self.leading:
                SCHEDULED.labels(job.__name__).inc()
                job()

        run_if_leading.__name__ = job.__name__
        return run_if_leading
