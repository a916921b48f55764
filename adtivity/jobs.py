"""Enqueueing Dramatiq work from processes that do not run actors (web, scheduler, CLI).

Work is named by actor name, so those processes need not import the workers package (which binds
the broker and loads every actor and its clients). The names below are the actors in workers/.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from adtivity.settings import Settings

PURGE_COMPANY = "purge_company"
CHECK_HEALTH = "check_health"
PERSIST_SHARD = "persist_shard"
ENTITIES_SHARD = "entities_shard"
TRIM_STREAMS = "trim_streams"
HOUSEKEEPING = "housekeeping"
ROLLUP_ALL = "rollup_all"
ROLLUP_COMPANY = "rollup_company"
APPLY_RETENTION = "apply_retention"
DELETE_USER = "delete_user"
EXPORT_USER = "export_user"
SEND_PASSWORD_RESET = "send_password_reset"
REBUILD_DEDUP = "rebuild_dedup"
VERIFY_CHAIN = "verify_chain"
DEFAULT_QUEUE = "default"


def redis_broker(settings: Settings) -> RedisBroker:
    """Dramatiq's broker, on the plain Redis of DRAMATIQ_REDIS_URL (REDIS_URL when unset)."""
    return RedisBroker(
        url=settings.dramatiq_redis, namespace=settings.dramatiq_namespace, socket_timeout=5, socket_connect_timeout=2
    )


class Jobs:
    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def enqueue(self, actor_name: str, *args, queue: str = DEFAULT_QUEUE) -> dramatiq.Message:
        message = dramatiq.Message(queue_name=queue, actor_name=actor_name, args=args, kwargs={}, options={})
        return self.broker.enqueue(message)
