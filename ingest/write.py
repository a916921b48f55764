"""The one Redis call that makes a request's events durable: the key's rate limit, session ids for
events that arrive without one, and the XADD, in a single atomic Lua script (one round trip).

Sessions: a session per identity ends after SESSION_TIMEOUT_SECONDS without events (30 minutes, as
in Segment and GA), in event time, in either direction: an event belongs to a session whose events
are within the timeout of its own time, wherever it arrives (a shuffled batch, a late batch from a
device that was offline, two tabs), else it begins a new one. State is one string per identity,
its most recent SESSION_HISTORY sessions as "<session id> <first event> <last event>" joined by
";"; a session's bounds are rewritten only when they move by more than ACTIVITY_GRANULARITY_SECONDS,
so an active session costs its part of one MGET a request, and the timeout is exact to within that
granularity. A session is never merged with another afterwards: a late event within the timeout of
two sessions joins one of them, though together they would have been one.
Derived ids travel in the entry's "s" field (see models/redis_streams.py), in the order of the events that
lack one; the entry's ClickHouse rows leave those session ids blank for the persist pump to fill in.
"""

from __future__ import annotations

import time

import msgspec
import redis
import uuid_utils

from adtivity.ratelimit import TAKE_TOKENS_LUA, Decision, Limit, decision
from ingest.script import ScriptArgument, script_runner
from models import redis_keys
from models.events import Event
from models.events_table import UnixSeconds
from models.redis_streams import encode_stored, stream_key

ACTIVITY_GRANULARITY_SECONDS = 60
SESSION_HISTORY = 8

# KEYS: the rate-limit bucket and the stream. The session keys are made here from ARGV[10] (prefix)
# and the identities in ARGV[11], so the arguments stay few (one MessagePack array of
# [identity, event time] for the events lacking a session id). Every key of the script carries the
# stream shard's hash tag, so on a Redis Cluster they all sit in the slot of KEYS. A new session's id is
# ARGV[14] (a UUIDv7 made for the request, less its last four hex digits) and the event's place in
# that array, in four hex digits: a UUIDv7 still, unique while a request has at most 65,536 events.
# ARGV: capacity, rate, now, cost, timeout, granularity, company, request id, encoded events,
#       session key prefix, the MessagePack array, message ids, ClickHouse rows, session id prefix,
#       sessions kept an identity.
_WRITE = (
    TAKE_TOKENS_LUA
    + """
local taken = take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if taken[1] == 0 then
  return {0, taken[2]}
end
local timeout = tonumber(ARGV[5])
local granularity = tonumber(ARGV[6])
local wanted = cmsgpack.unpack(ARGV[11])
local keys = {}
for i, event in ipairs(wanted) do
  keys[i] = ARGV[10] .. event[1]
end
local kept = tonumber(ARGV[15])
-- state per session key: {changed, {session id, first, last}, ...} (the most recent last first);
-- read with MGET, in chunks that stay within Lua's limit on unpacked arguments, written once each
local states = {}
for first = 1, #keys, 1000 do
  local chunk = {unpack(keys, first, math.min(first + 999, #keys))}
  for offset, stored in ipairs(redis.call('MGET', unpack(chunk))) do
    local key = chunk[offset]
    if not states[key] then
      local state = {false}
      if stored then
        for id, from, to in string.gmatch(stored, '([^ ;]+) (%d+) (%d+)') do
          state[#state + 1] = {id, tonumber(from), tonumber(to)}
        end
      end
      states[key] = state
    end
  end
end
local sessions = {}
for i, event in ipairs(wanted) do
  local state, ts = states[keys[i]], event[2]
  local found = nil
  for s = 2, #state do
    local session = state[s]
    if ts >= session[2] - timeout and ts <= session[3] + timeout then
      found = session
      break
    end
  end
  if not found then
    found = {string.format('%s%04x', ARGV[14], i - 1), ts, ts}
    state[#state + 1] = found
    state[1] = true
  elseif ts > found[3] + granularity or ts < found[2] - granularity then
    found[2], found[3] = math.min(found[2], ts), math.max(found[3], ts)
    state[1] = true
  end
  sessions[i] = found[1]
end
for key, state in pairs(states) do
  if state[1] then
    local list = {unpack(state, 2)}
    table.sort(list, function(a, b) return a[3] > b[3] end)
    local parts = {}
    for s = 1, math.min(#list, kept) do
      parts[s] = list[s][1] .. ' ' .. list[s][2] .. ' ' .. list[s][3]
    end
    redis.call('SET', key, table.concat(parts, ';'), 'EX', timeout * 2)
  end
end
local id = redis.call('XADD', KEYS[2], '*', 'c', ARGV[7], 'r', ARGV[8], 'e', ARGV[9], 's', table.concat(sessions, ' '),
                         'm', ARGV[12], 'j', ARGV[13])
return {1, id}
"""
)
_pack = msgspec.msgpack.Encoder()


class EventWriter:
    def __init__(self, client: redis.Redis, *, session_timeout_seconds: int) -> None:
        self.session_timeout_seconds = session_timeout_seconds
        self._write = script_runner(client, _WRITE)

    def write(
        self, shard: int, company_id: str, events: list[Event], request_id: str, *, bucket: str, limit: Limit
    ) -> Decision:
        """Appends the events to the stream of `shard` unless the bucket (of the same shard's hash tag)
        is empty; events lacking a session id get one."""
        events.sort(key=lambda e: e.event_time)
        seconds = UnixSeconds()  # shared with the rows, which convert the same event times
        wanted = [(e.identity, seconds[e.event_time]) for e in events if not e.session_id]
        payload, message_ids, rows = encode_stored(events, seconds)
        args: list[ScriptArgument] = [
            limit.capacity,
            limit.per_second,
            time.time(),
            len(events),
            self.session_timeout_seconds,
            ACTIVITY_GRANULARITY_SECONDS,
            company_id,
            request_id,
            payload,
            redis_keys.session_state(shard, company_id, ""),
            _pack.encode(wanted),
            message_ids,
            rows,
            str(uuid_utils.uuid7())[:-4],
            SESSION_HISTORY,
        ]
        allowed, detail = self._write([bucket, stream_key(shard)], args)
        return decision(allowed, detail if not allowed else 0, limit, len(events))
