"""The one Redis call that makes a request's events durable: the key's rate limit, session ids for
events that arrive without one, and the XADD, in a single atomic Lua script (one round trip).

Sessions: a session per identity ends after SESSION_TIMEOUT_SECONDS without events (30 minutes, as
in Segment and GA). State is one string per identity, "<session id> <last activity>"; the last
activity is rewritten only when it moves on by more than ACTIVITY_GRANULARITY_SECONDS, so an active
session costs one GET per event, and the timeout is exact to within that granularity. Derived ids
travel in the entry's "s" field (see models/streams.py), in the order of the events that lack one;
the entry's ClickHouse rows leave those session ids blank for the persist pump to fill in.
"""
from __future__ import annotations

import time

import msgspec
import redis
import uuid_utils

from models import redis_keys
from models.events import Event
from models.streams import encode_stored
from web.ratelimit import TAKE_TOKENS_LUA, Decision, Limit, decision

ACTIVITY_GRANULARITY_SECONDS = 60

# KEYS: the rate-limit bucket and the stream. The session keys are made here from ARGV[10] (prefix)
# and the identities in ARGV[11], so the arguments stay few (one MessagePack array of
# [identity, event time, candidate id] for the events lacking a session id): on a single Redis this
# is safe; a Redis Cluster deployment would shard by company and pass the keys instead.
# ARGV: capacity, rate, now, cost, timeout, granularity, company, request id, encoded events,
#       session key prefix, the MessagePack array, message ids, ClickHouse rows.
_WRITE = TAKE_TOKENS_LUA + """
local taken = take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if taken[1] == 0 then
  return {0, taken[2]}
end
local timeout = tonumber(ARGV[5])
local granularity = tonumber(ARGV[6])
local sessions = {}
for _, wanted in ipairs(cmsgpack.unpack(ARGV[11])) do
  local key = ARGV[10] .. wanted[1]
  local ts = wanted[2]
  local state = redis.call('GET', key)
  local id, last
  if state then
    local space = string.find(state, ' ', 1, true)
    id = string.sub(state, 1, space - 1)
    last = tonumber(string.sub(state, space + 1))
  end
  if (not id) or ts - last > timeout then
    id = wanted[3]
    redis.call('SET', key, id .. ' ' .. ts, 'EX', timeout * 2)
  elseif ts - last > granularity then
    redis.call('SET', key, id .. ' ' .. ts, 'EX', timeout * 2)
  end
  sessions[#sessions + 1] = id
end
local id = redis.call('XADD', KEYS[2], '*', 'c', ARGV[7], 'r', ARGV[8], 'e', ARGV[9], 's', table.concat(sessions, ' '),
                         'm', ARGV[12], 'j', ARGV[13])
return {1, id}
"""
_pack = msgspec.msgpack.Encoder()


class EventWriter:
    def __init__(self, client: redis.Redis, *, session_timeout_seconds: int) -> None:
        self.session_timeout_seconds = session_timeout_seconds
        self._write = client.register_script(_WRITE)

    def write(self, stream: str, company_id: str, events: list[Event], request_id: str, *,
              bucket: str, limit: Limit) -> Decision:
        """Appends the events to `stream` unless the bucket is empty; events lacking a session id get one."""
        events.sort(key=lambda e: e.event_time)
        wanted = [(e.identity, int(e.event_time.timestamp()), str(uuid_utils.uuid7())) for e in events if not e.session_id]
        payload, message_ids, rows = encode_stored(events)
        args = [limit.capacity, limit.per_second, time.time(), len(events), self.session_timeout_seconds,
                ACTIVITY_GRANULARITY_SECONDS, company_id, request_id, payload,
                redis_keys.session_state(company_id, ""), _pack.encode(wanted), message_ids, rows]
        allowed, detail = self._write(keys=[bucket, stream], args=args)
        return decision(allowed, detail if not allowed else 0, limit, len(events))
