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

# A Lua function other scripts embed (ingest/write.py does): refill, then take `cost` tokens.
TAKE_TOKENS_LUA = """
local function take_tokens(key, capacity, rate, now, cost)
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  local allowed = 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
  return {allowed, tostring(tokens)}
end
"""
_TAKE = (
    TAKE_TOKENS_LUA
    + """
return take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
"""
)


@dataclass(frozen=True)
class Limit:
    capacity: float
    per_second: float

    @classmethod
    def per_minute(cls, count: int) -> Limit:
        return cls(capacity=count, per_second=count / 60)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_TAKE)

    def take(self, scope: str, subject: str, limit: Limit, *, cost: float = 1, now: float | None = None) -> Decision:
        allowed, tokens = self._script(
            keys=[redis_keys.rate_limit_bucket(scope, subject)],
            args=[limit.capacity, limit.per_second, time.time() if now is None else now, cost],
        )
        return decision(allowed, tokens, limit, cost)


def decision(allowed, tokens, limit: Limit, cost: float) -> Decision:
    """The answer of a take_tokens call: if refused, whole seconds until `cost` tokens are back."""
    if allowed:
        return Decision(True, 0)
    return Decision(False, max(1, math.ceil((cost - float(tokens)) / limit.per_second)))
