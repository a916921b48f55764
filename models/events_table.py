"""The ClickHouse `events` table as the workers write it: rows as JSONEachRow, encoded by msgspec.

Ingest encodes each event's row once, when it writes the event to the stream (`stream_row`, the
"j" field of models/redis_streams.py), so the persist pump forwards bytes instead of decoding events and
building rows (it adds the two values ingest cannot know: the stream entry id, and the session id
derived in the same Redis call; `insert_rows`). ClickHouse parses JSONEachRow in C++ and msgspec
encodes in C, so a row costs a few microseconds of Python. What both ClickHouse 18.16 and current
releases accept: DateTime as Unix seconds, Decimal as an unquoted number, UInt8 as 0/1; omitted
columns take their DEFAULT (`person`) or their type's default, so a row carries only the
event's fields that are set.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from models.events import Event

_json = msgspec.json.Encoder(decimal_format="number")
# SQL over `events` shared by rollups, drill-downs and queries: a company's human (non-bot) events, who
# did one, and when each of the company's people was first seen (columns identity, first).
COMPANY_HUMANS = "company_id = toUUID(%(company)s) AND is_bot = 0"
IDENTITY = "if(user_id != '', user_id, anonymous_id)"
PERSON = "person"  # cityHash64 of IDENTITY, 0 for none: a column (migration 0004), cheaper to count than IDENTITY
FIRST_SEEN = (
    "SELECT identity, minMerge(first_seen) AS first FROM identity_first_seen "
    "WHERE company_id = toUUID(%(company)s) GROUP BY identity"
)
JSON_OBJECTS = ("properties", "traits", "context")
# The columns the workers write, named in each insert: ClickHouse computes every other column from its
# DEFAULT (`person`), which on 18.16 it does only for a column the insert leaves out (JSONEachRow
# fills a named column's missing field with zero).
EVENT_COLUMNS = (*Event.__struct_fields__, "tx_value_num", "stream_entry")
INSERT_SETTINGS = {"input_format_skip_unknown_fields": 1}
# How a stream row begins when its event came without a session id (one is derived as it is written).
NO_SESSION = b'{"session_id":"",'


def unix_seconds(moment: dt.datetime) -> int:
    """A naive UTC moment as whole Unix seconds, as a DateTime parameter takes it."""
    return int(moment.replace(tzinfo=dt.UTC).timestamp())


class UnixSeconds(dict[dt.datetime, int]):
    """Moments as whole Unix seconds, each converted once: a request's events share their received_at,
    and those that came without a timestamp their event time too."""

    def __missing__(self, moment: dt.datetime) -> int:
        seconds = self[moment] = int(moment.timestamp())
        return seconds


def stream_row(event: Event, seconds: UnixSeconds) -> bytes:
    """The row of `event` without its stream entry id; one without a session id yet begins with
    NO_SESSION."""
    values = msgspec.to_builtins(event, builtin_types=(dt.datetime,))  # set fields only
    values["event_time"] = seconds[event.event_time]
    values["received_at"] = seconds[event.received_at]
    if event.sent_at:
        values["sent_at"] = seconds[event.sent_at]
    if event.time_clamped:
        values["time_clamped"] = 1
    if event.is_bot:
        values["is_bot"] = 1
    for name in JSON_OBJECTS:
        values[name] = _json.encode(values[name]).decode() if name in values else "{}"
    if event.tx_value:
        values["tx_value_num"] = float(event.tx_value)
    if event.amount:
        values["amount"] = Decimal(event.amount)
    row = _json.encode(values)
    return row if event.session_id else NO_SESSION + row[1:]


def stream_rows(events: list[Event], seconds: UnixSeconds | None = None) -> bytes:
    """The events' stream rows, a line each (`seconds`: conversions the caller already made)."""
    seconds = UnixSeconds() if seconds is None else seconds
    return b"\n".join([stream_row(event, seconds) for event in events])


def insert_rows(stream_entry: str, rows: bytes, sessions: bytes) -> list[bytes]:
    """An entry's stream rows ready to insert: each names `stream_entry`, and each that began without a
    session id takes the next of `sessions` (the entry's derived ids, space-separated, in order).
    Both are ours (digits and dashes; UUIDs), so they need no escaping."""
    head = b'{"stream_entry":"' + stream_entry.encode() + b'",'
    derived = iter(sessions.split())
    complete = []
    for row in rows.split(b"\n") if rows else ():
        if row.startswith(NO_SESSION):
            session = next(derived, None)
            if session is not None:
                row = b'{"session_id":"' + session + b'",' + row[len(NO_SESSION) :]
        complete.append(head + row[1:])
    return complete
