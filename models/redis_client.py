"""Redis clients, built from the settings: a single Redis, or a Redis Cluster when REDIS_CLUSTER is on.

Every process makes its Redis clients here, so the same code runs on one node or on a cluster. On a
cluster, REDIS_URL names one of its nodes and REDIS_CLUSTER_NODES more (the client discovers the
rest from any that answers, and follows failovers);
every Lua script and transaction touches keys of one hash slot (models/redis_keys.py tags a stream
shard's keys with `{shard}`). Dramatiq's queues stay on a plain Redis (DRAMATIQ_REDIS_URL): its
broker's scripts do not speak Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from adtivity.settings import Settings

# What a caller sees while Redis, or a part of a cluster, is unreachable or failing over: worth trying
# again later. A cluster adds its own (CLUSTERDOWN, TRYAGAIN, a slot without a master for a moment,
# a write that reached a master just demoted), some of which are not even RedisErrors.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.RedisClusterException,
)


def redis_client(settings: Settings, *, timeout: float, connect_timeout: float = 2.0, **options: Any) -> Any:
    """A thread-safe, pooled client whose calls time out after `timeout` seconds: redis.Redis, or a
    redis.cluster.RedisCluster (the same commands, routed by key). `options` go to the connections."""
    if settings.redis_cluster:
        options["startup_nodes"] = startup_nodes(settings, ClusterNode)
        return RedisCluster.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=connect_timeout, **options
        )
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=connect_timeout, **options
    )


def async_redis_client(settings: Settings, *, timeout: float) -> Any:
    """The asyncio twin of `redis_client`, for the streams process (connects lazily)."""
    if settings.redis_cluster:
        return AsyncRedisCluster.from_url(
            settings.redis_url, socket_timeout=timeout, startup_nodes=startup_nodes(settings, AsyncClusterNode)
        )
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=timeout)


def startup_nodes(settings: Settings, node: Any) -> list[Any]:
    """REDIS_CLUSTER_NODES as the client's extra startup nodes (REDIS_URL's node comes first): a
    process that starts while that node is down still finds the cluster."""
    return [node(host, int(port)) for host, _, port in (n.rpartition(":") for n in settings.redis_cluster_nodes)]


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def get_many(client: Any, keys: list[str]) -> list[bytes | None]:
    """GET of each key, in one round trip a node: MGET on a single Redis; on a cluster, whose MGET
    takes keys of one slot only, a pipeline split by node."""
    values: list[bytes | None] = client.mget_nonatomic(keys) if is_cluster(client) else client.mget(keys)
    return values
