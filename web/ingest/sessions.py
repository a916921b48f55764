"""Session ids for events that arrive without one: a session per identity ends after
SESSION_TIMEOUT_SECONDS without events (30 minutes, as in Segment and GA). One Lua call per request
decides for every event at once, atomically, so concurrent web workers agree.

State is one string per identity, "<session id> <last activity>". The last activity is rewritten
only when it moves on by more than SESSION_ACTIVITY_GRANULARITY seconds (60), so an active session
costs one GET per event, not a write; the timeout is then exact to within that granularity."""
from __future__ import annotations

import uuid_utils
import redis

from models import redis_keys
from models.events import Event

_ASSIGN = """
local timeout = tonumber(ARGV[1])
local granularity = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local ts = tonumber(ARGV[2 * i + 1])
  local state = redis.call('GET', key)
  local id, last
  if state then
    local space = string.find(state, ' ', 1, true)
    id = string.sub(state, 1, space - 1)
    last = tonumber(string.sub(state, space + 1))
  end
  if (not id) or ts - last > timeout then
    id = ARGV[2 * i + 2]
    redis.call('SET', key, id .. ' ' .. ts, 'EX', timeout * 2)
  elseif ts - last > granularity then
    redis.call('SET', key, id .. ' ' .. ts, 'EX', timeout * 2)
  end
  out[i] = id
end
return out
"""
ACTIVITY_GRANULARITY_SECONDS = 60


class Sessions:
    def __init__(self, client: redis.Redis, *, timeout_seconds: int) -> None:
        self.timeout_seconds = timeout_seconds
        self._assign = client.register_script(_ASSIGN)

    def assign(self, events: list[Event]) -> None:
        """Sets session_id on the events that have none (in place)."""
        missing = sorted((e for e in events if not e.session_id), key=lambda e: e.event_time)
        if not missing:
            return
        keys, args = [], [self.timeout_seconds, ACTIVITY_GRANULARITY_SECONDS]
        for event in missing:
            keys.append(redis_keys.session_state(event.company_id, event.identity))
            args += [int(event.event_time.timestamp()), str(uuid_utils.uuid7())]
        for event, session_id in zip(missing, self._assign(keys=keys, args=args)):
            event.session_id = session_id.decode()
