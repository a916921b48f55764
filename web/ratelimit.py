"""Token-bucket rate limits kept in Redis, shared by every web worker.

One Lua script refills and takes atomically, so concurrent workers never over-admit. A limit is
(capacity, refill per second); `take` answers whether the request may go on and, if not, how many
whole seconds to wait (for Retry-After).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis

from models import redis_keys

_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Limit:
    capacity: float
    per_second: float

    @classmethod
    def per_minute(cls, count: int) -> "Limit":
        return cls(capacity=count, per_second=count / 60)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_TAKE)

    def take(self, scope: str, subject: str, limit: Limit, *, cost: float = 1) -> Decision:
        allowed, tokens = self._script(
            keys=[redis_keys.rate_limit_bucket(scope, subject)],
            args=[limit.capacity, limit.per_second, time.time(), cost],
        )
        if allowed:
            return Decision(True, 0)
        missing = cost - float(tokens)
        return Decision(False, max(1, math.ceil(missing / limit.per_second)))
