"""Actor `persist_shard`: moves events from one Redis stream shard into ClickHouse exactly once, and
hands the newly stored ones to the entities pump (workers/entities.py).

For each batch (see workers/pump.py for reading, retries and quarantine), without decoding the
events: ingest wrote their message ids and ClickHouse rows into the entry (models/redis_streams.py):
1. asks the shard's de-duplication filter (dedup/filter.py) about the batch's (company, message id)
   pairs, adding them to it; those it may have seen (resends, its few false positives, or all of
   them while the filter does not cover a whole window) are looked up in ClickHouse's `event_ids`:
   an event stored before by another entry is a resend and is dropped; one stored by this same
   entry (an earlier attempt that died before acknowledging) is not inserted again; repeats within
   the batch count once. The others are new for certain: the look-up's cost stays flat however many
   ids a company has stored;
2. inserts the new events' rows in one INSERT (which also fills `event_ids`, with the entry id);
3. appends, per entry, its events (new, or stored by its own earlier attempt) to the entities
   stream, named by the entry id, and notes the entry in the shard's hand-over set, in one
   transaction; an entry found in that set (a redelivery), or no longer pending (finished by
   another pump that had claimed it too), is not handed over again, so every stored event reaches
   the entities stream exactly once (the real-time counts depend on it);
4. acknowledges the entries and takes them out of the hand-over set, in one transaction.
A crash between any two steps leaves the entries pending; the retry repeats what is missing and
nothing else. Postgres being down does not stop this path (nor ClickHouse being down the entities one).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from adtivity.jobs import PERSIST_SHARD
from adtivity.settings import Settings
from dedup.filter import ShardFilter
from models import redis_keys
from models.clickhouse import string_set
from models.clickhouse_cluster import Layout
from models.events_table import EVENT_COLUMNS, INSERT_SETTINGS, insert_rows, stream_rows
from models.redis_streams import PERSIST_GROUP, encode_events, entities_stream_key, stream_key, unpack
from workers.actor import actor
from workers.pump import Entry, StreamPump, run_pump
from workers.runtime import current

# KEYS: the events stream, the shard's hand-over set, the entities stream. ARGV: the group, then four
# a entry: its id, company, events and session ids. Appends the entries still pending in the group
# and not handed over yet (fields as models/redis_streams.entry_fields), and notes them as handed over.
_HAND_OVER = """
local handed = 0
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[2], id) == 0 and #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 1 then
    redis.call('XADD', KEYS[3], '*', 'c', ARGV[i + 1], 'r', id, 'e', ARGV[i + 2], 's', ARGV[i + 3])
    redis.call('SADD', KEYS[2], id)
    handed = handed + 1
  end
end
return handed
"""
_json = msgspec.json.Encoder()


def string_literal(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped (the only specials inside quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class EventsPump(StreamPump):
    kind = "persist"

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        connect: Callable[[], Client],
        shard: int,
        dedup_filter: ShardFilter | None = None,
    ) -> None:
        """`connect` gives the ClickHouse client; it is called when a batch is stored, inside the
        store's retries, so a pump started while ClickHouse is down waits for it like any other.
        `dedup_filter` is the shard's filter the process keeps between pumps (a new one otherwise)."""
        super().__init__(settings, client, stream_key(shard), PERSIST_GROUP, shard)
        self.connect = connect
        self.filter = dedup_filter or ShardFilter(settings, client, shard)
        self.handed_key = redis_keys.handed_over(shard)
        self._hand_over = client.register_script(_HAND_OVER)
        self.insert_settings = {**INSERT_SETTINGS, **Layout.from_settings(settings).insert_settings}

    def store(self, entries: list[Entry]) -> None:
        to_insert, to_forward = self.sort_out(entries)
        if to_insert:
            self.connect().raw_insert(
                "events",
                column_names=EVENT_COLUMNS,
                insert_block=b"\n".join(to_insert) + b"\n",
                fmt="JSONEachRow",
                settings=self.insert_settings,
            )
        self.hand_over(entries, to_forward)

    def hand_over(self, entries: list[Entry], to_forward: dict[str, list[int]]) -> None:
        """Appends each entry's events (those at the indexes in `to_forward`) to the entities stream,
        named by the entry's id, and notes the entry in the hand-over set, in one script; unless an
        earlier delivery of the entry did, or the entry is no longer pending (another pump, which had
        claimed it too, finished it)."""
        args: list[str | bytes] = [self.group]
        for entry in entries:
            indexes = to_forward.get(entry.id)
            if not indexes:
                continue
            if len(indexes) == len(entry.message_ids):  # the whole entry: pass its bytes on as they are
                payload, sessions = entry.fields[b"e"], entry.fields.get(b"s", b"")
            else:  # a part: the decoded events carry their session ids already
                payload, sessions = encode_events([entry.events[index] for index in indexes]), b""
            args += [entry.id, entry.fields[b"c"], payload, sessions]
        if len(args) > 1:
            self._hand_over(keys=[self.stream, self.handed_key, entities_stream_key(self.shard)], args=args)

    def forget(self, pipe, ids: list[str]) -> None:
        pipe.srem(self.handed_key, *ids)

    def sort_out(self, entries: list[Entry]) -> tuple[list[bytes], dict[str, list[int]]]:
        """The rows to insert, and the indexes of the events each entry hands to the entities pump."""
        stored = self.stored_by(entries)
        seen: set[tuple[str, str]] = set()
        to_insert: list[bytes] = []
        to_forward: dict[str, list[int]] = {}
        for entry in entries:
            rows = entry_rows(entry)
            company = entry.company
            forwarded = to_forward[entry.id] = []
            for index, message_id in enumerate(entry.message_ids):
                key = (company, message_id)
                if key in seen:
                    continue
                seen.add(key)
                owner = stored.get(key)
                if owner is None:
                    to_insert.append(rows[index])
                if owner is None or owner == entry.id:
                    forwarded.append(index)
        return to_insert, to_forward

    def maybe_stored(self, entries: list[Entry]) -> set[str]:
        """The batch's message ids the filter may have seen (of any of the batch's companies), after
        adding every id of the batch to it."""
        by_company: dict[str, set[str]] = {}
        for entry in entries:
            by_company.setdefault(entry.company, set()).update(entry.message_ids)
        maybe: set[str] = set()
        for company, message_ids in by_company.items():
            ordered = list(message_ids)
            maybe.update(
                m for m, seen in zip(ordered, self.filter.check_and_add(company, ordered), strict=True) if seen
            )
        return maybe

    def stored_by(self, entries: list[Entry]) -> dict[tuple[str, str], str]:
        """(company, message id) -> the stream entry that stored it, for this batch's events already in
        ClickHouse. One query a batch, for the ids the filter may have seen; the ids travel as external
        data (a temporary table), which ClickHouse reads far faster than thousands of literals, and
        the primary key narrows the scan. Redelivered entries are also looked for in `events` itself:
        an insert cut short (ClickHouse killed, or a client timeout while the server went on) may have
        written `events` without `event_ids`, which its materialised view fills afterwards, not
        atomically."""
        message_ids = self.maybe_stored(entries)
        stored: dict[tuple[str, str], str] = {}
        if message_ids:
            client = self.connect()
            ids, carrying = string_set(client, "batch_ids", message_ids)
            result = client.query(
                "SELECT toString(company_id), message_id, any(stream_entry) FROM event_ids "
                f"WHERE company_id IN ({companies_of(entries)}) AND message_id IN {ids} "
                "GROUP BY company_id, message_id",
                **carrying,
            )
            stored = owners(result)
        redelivered = [entry for entry in entries if entry.redelivered]
        if redelivered:
            inserted = self.inserted_by(redelivered)
            self.record_ids({key: entry for key, entry in inserted.items() if key not in stored})
            stored.update(inserted)
        return stored

    def record_ids(self, missing: dict[tuple[str, str], str]) -> None:
        """Writes into `event_ids` the ids of rows an insert cut short left in `events` alone, so later
        resends of those events (in other entries) are recognised too."""
        if missing:
            now = int(time.time())
            rows = b"\n".join(
                _json.encode(
                    {"company_id": company, "message_id": message_id, "received_at": now, "stream_entry": entry}
                )
                for (company, message_id), entry in missing.items()
            )
            self.connect().raw_insert("event_ids", insert_block=rows + b"\n", fmt="JSONEachRow")

    def inserted_by(self, entries: list[Entry]) -> dict[tuple[str, str], str]:
        """(company, message id) -> entry, for rows these entries put in `events` (bounded by the
        entries' companies and event times, so the primary key narrows the scan)."""
        events = [event for entry in entries for event in entry.events]
        client = self.connect()
        ids, carrying = string_set(client, "batch_entries", [entry.id for entry in entries])
        carrying.setdefault("parameters", {}).update(
            first=int(min(event.event_time for event in events).timestamp()),
            last=int(max(event.event_time for event in events).timestamp()) + 1,
        )
        result = client.query(
            "SELECT toString(company_id), message_id, stream_entry FROM events "
            f"WHERE company_id IN ({companies_of(entries)}) AND event_time >= toDateTime(%(first)s) "
            f"AND event_time <= toDateTime(%(last)s) AND stream_entry IN {ids}",
            **carrying,
        )
        return owners(result)


def entry_rows(entry: Entry) -> list[bytes]:
    """The entry's ClickHouse rows, one an event: as ingest encoded them, or, for an entry without
    them (replayed from quarantine), from its events, which carry their session ids."""
    encoded = entry.fields.get(b"j")
    if encoded is None:
        rows = insert_rows(entry.id, stream_rows(entry.events), b"")
    else:
        rows = insert_rows(entry.id, unpack(encoded), entry.fields.get(b"s", b""))
    if len(rows) != len(entry.message_ids):
        raise ValueError(f"entry has {len(rows)} rows for {len(entry.message_ids)} message ids")
    return rows


def companies_of(entries: list[Entry]) -> str:
    """The entries' companies as a list of SQL literals."""
    return ", ".join(map(string_literal, {entry.company for entry in entries}))


def owners(result) -> dict[tuple[str, str], str]:
    """Rows of (company, message id, stream entry) as (company, message id) -> stream entry."""
    return {(company, message_id): entry for company, message_id, entry in result.result_rows}


@actor(PERSIST_SHARD, max_retries=0, time_limit=10 * 60_000)
def persist_shard(shard: int) -> None:
    runtime = current()
    client = runtime.redis(30)
    pump = EventsPump(runtime.settings, client, runtime.clickhouse(30).get, shard, runtime.dedup_filter(shard))
    if run_pump(
        runtime.settings,
        client,
        pump,
        redis_keys.pump_lease("persist", shard),
        redis_keys.pump_queued("persist", shard),
    ):
        runtime.enqueue(PERSIST_SHARD, shard)
