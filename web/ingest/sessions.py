"""Session ids for events that arrive without one: a session per identity ends after
SESSION_TIMEOUT_SECONDS without events (30 minutes, as in Segment and GA). One Lua call per request
decides for every event at once, atomically, so concurrent web workers agree."""
from __future__ import annotations

import uuid_utils
import redis

from models import redis_keys
from models.events import Event

_ASSIGN = """
local timeout = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local ts = tonumber(ARGV[2 * i])
  local candidate = ARGV[2 * i + 1]
  local state = redis.call('HMGET', key, 'id', 'last')
  local id = state[1]
  local last = tonumber(state[2])
  if (not id) or ts - last > timeout then
    id = candidate
    redis.call('HSET', key, 'id', id, 'last', tostring(ts))
  elseif ts > last then
    redis.call('HSET', key, 'last', tostring(ts))
  end
  redis.call('EXPIRE', key, timeout * 2)
  out[i] = id
end
return out
"""


class Sessions:
    def __init__(self, client: redis.Redis, *, timeout_seconds: int) -> None:
        self.timeout_seconds = timeout_seconds
        self._assign = client.register_script(_ASSIGN)

    def assign(self, events: list[Event]) -> None:
        """Sets session_id on the events that have none (in place)."""
        missing = sorted((e for e in events if not e.session_id), key=lambda e: e.event_time)
        if not missing:
            return
        keys, args = [], [self.timeout_seconds]
        for event in missing:
            keys.append(redis_keys.session_state(event.company_id, event.identity))
            args += [event.event_time.timestamp(), str(uuid_utils.uuid7())]
        for event, session_id in zip(missing, self._assign(keys=keys, args=args)):
            event.session_id = session_id.decode()
