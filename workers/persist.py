"""Actor `persist_shard`: moves events from one Redis stream shard into ClickHouse (raw events) and
Postgres (entities), exactly once, acknowledging only what is durable in both.

One pump per shard at a time (a Redis lease). A pump reads batches (up to PERSIST_BATCH_EVENTS events
or PERSIST_BATCH_SECONDS) with the consumer group "persist", then for each batch:
1. drops events whose (company, message id) ClickHouse already holds (`event_ids`), and repeats
   within the batch: a resent or redelivered event is stored once;
2. in one Postgres transaction records the batch's stream entries as persisted and applies the
   entities of the events of entries not recorded before (so entities are never counted twice);
3. inserts the new events into ClickHouse in one INSERT (which also fills `event_ids`);
4. acknowledges the entries.
A crash anywhere leaves the entries pending; the next pump claims them after PERSIST_CLAIM_IDLE_SECONDS
and the checks above make the retry harmless. A store that is down is retried with backoff, holding
the batch. An entry that fails for another reason is retried on later claims and, past
PERSIST_MAX_DELIVERIES, quarantined (dead-letter stream plus the `quarantine` table), then acknowledged.
Each pump runs for PERSIST_PUMP_SECONDS, then enqueues its successor; the scheduler restarts any
shard whose lease lapsed.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import clickhouse_connect.driver.exceptions as ch_errors
import dramatiq
import msgspec
import peewee
import redis

from adtivity.jobs import PERSIST_SHARD
from adtivity.logs import log_event
from adtivity.settings import Settings
from models import redis_keys
from models.clickhouse import PerThread
from models.db import database
from models.events import Event
from models.events_table import COLUMN_NAMES, COLUMN_TYPES, to_row
from models.streams import DEAD_LETTER_STREAM, PERSIST_GROUP, decode_entry, encode_events, stream_key
from models.tracking import PersistedEntry, Quarantine
from workers import settings
from workers.entities import apply_entities
from workers.lease import Lease

log = logging.getLogger(__name__)
TRANSIENT = (peewee.OperationalError, peewee.InterfaceError, ch_errors.OperationalError, redis.ConnectionError,
             redis.TimeoutError, ConnectionError, TimeoutError)
MAX_BACKOFF_SECONDS = 10.0
# ClickHouse refuses queries over max_query_size (256 KiB by default): look ids up in slices of this.
LOOKUP_QUERY_BYTES = 100_000


@dataclass
class Entry:
    id: str
    fields: dict
    events: list[Event]


def string_literal(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped (the only specials inside quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def string_list(values) -> str:
    """Client-side formatting of thousands of ids through clickhouse-connect's parameter binding is
    slower than the query itself; message ids are plain strings, so quote them here."""
    return ", ".join(map(string_literal, values))


def chunks_of_bytes(values: list[str], limit: int):
    """Consecutive slices of `values` whose quoted length stays under `limit` bytes."""
    chunk, size = [], 0
    for value in values:
        if chunk and size + len(value) + 6 > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value) + 6
    if chunk:
        yield chunk


class Persister:
    def __init__(self, settings: Settings, client: redis.Redis, clickhouse, shard: int) -> None:
        self.settings = settings
        self.redis = client
        self.clickhouse = clickhouse
        self.shard = shard
        self.stream = stream_key(shard)
        self.consumer = f"persist-{shard}"

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, PERSIST_GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # Reading.
    def read_batch(self, block_seconds: float) -> list[Entry]:
        """New entries: up to the batch's event count, waiting at most `block_seconds` in all."""
        entries: list[Entry] = []
        events = 0
        deadline = time.monotonic() + block_seconds
        while events < self.settings.persist_batch_events:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            answer = self.redis.xreadgroup(PERSIST_GROUP, self.consumer, {self.stream: ">"}, count=100,
                                           block=remaining_ms if not entries else None)
            if not answer:
                break
            for entry_id, fields in answer[0][1]:
                entry = self.decode(entry_id, fields)
                if entry is not None:
                    entries.append(entry)
                    events += len(entry.events)
        return entries

    def claim_stale(self) -> list[Entry]:
        """Entries left pending longer than the idle timeout (a crashed pump's, or ones that failed)."""
        idle_ms = self.settings.persist_claim_idle_seconds * 1000
        _, claimed, *_ = self.redis.xautoclaim(self.stream, PERSIST_GROUP, self.consumer, min_idle_time=idle_ms,
                                               start_id="0-0", count=500)
        if not claimed:
            return []
        deliveries = {
            p["message_id"]: p["times_delivered"]
            for p in self.redis.xpending_range(self.stream, PERSIST_GROUP, min=claimed[0][0], max=claimed[-1][0],
                                               count=len(claimed) + 100, consumername=self.consumer)
        }
        entries = []
        for entry_id, fields in claimed:
            if fields is None:  # deleted from the stream meanwhile
                self.redis.xack(self.stream, PERSIST_GROUP, entry_id)
                continue
            if deliveries.get(entry_id, 0) > self.settings.persist_max_deliveries:
                self.quarantine(entry_id, fields, f"failed {deliveries[entry_id] - 1} deliveries")
                continue
            entry = self.decode(entry_id, fields)
            if entry is not None:
                entries.append(entry)
        return entries

    def decode(self, entry_id: bytes, fields: dict) -> Entry | None:
        try:
            return Entry(entry_id.decode(), fields, decode_entry(fields))
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError) as error:
            self.quarantine(entry_id, fields, f"undecodable entry: {error}")
            return None

    # Storing.
    def persist(self, entries: list[Entry], deadline: float) -> None:
        """Stores and acknowledges `entries`; what cannot be stored stays pending."""
        if not entries:
            return
        backoff = 0.5
        while True:
            try:
                self.store(entries)
                self.ack(entries)
                return
            except TRANSIENT as error:
                if time.monotonic() + backoff > deadline:
                    log_event(log, "store unavailable; batch left pending", level=logging.WARNING,
                              shard=self.shard, entries=len(entries), error=type(error).__name__)
                    return
                log_event(log, "store unavailable; retrying", level=logging.WARNING, shard=self.shard,
                          seconds=backoff, error=type(error).__name__)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as error:  # a data problem: find the entries that have it
                if len(entries) == 1:
                    log_event(log, "entry failed; left pending for retry", level=logging.WARNING,
                              shard=self.shard, entry=entries[0].id, error=f"{type(error).__name__}: {error}")
                    return
                for entry in entries:
                    self.persist([entry], deadline)
                return

    def store(self, entries: list[Entry]) -> None:
        new_events = self.unseen(entries)
        with database.atomic():
            rows = [{"stream": self.stream, "entry_id": e.id} for e in entries]
            fresh_entries = {
                row.entry_id for row in PersistedEntry.insert_many(rows).on_conflict_ignore()
                .returning(PersistedEntry.entry_id).execute()
            }
            apply_entities([event for entry_id, event in new_events if entry_id in fresh_entries])
        if new_events:
            self.clickhouse.insert("events", [to_row(event) for _, event in new_events],
                                   column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES)

    def unseen(self, entries: list[Entry]) -> list[tuple[str, Event]]:
        """(entry id, event) for each event ClickHouse does not hold yet, first copy only.
        One query a batch: the primary key (company, message id) narrows it to the candidates."""
        companies = string_list({event.company_id for entry in entries for event in entry.events})
        message_ids = sorted({event.message_id for entry in entries for event in entry.events})
        stored = set()
        for chunk in chunks_of_bytes(message_ids, LOOKUP_QUERY_BYTES):
            result = self.clickhouse.query(
                "SELECT toString(company_id), message_id FROM event_ids "
                f"WHERE company_id IN ({companies}) AND message_id IN ({string_list(chunk)})"
            )
            stored.update((company, message_id) for company, message_id in result.result_rows)
        fresh = []
        for entry in entries:
            for event in entry.events:
                key = (event.company_id, event.message_id)
                if key not in stored:
                    stored.add(key)
                    fresh.append((entry.id, event))
        return fresh

    def ack(self, entries: list[Entry]) -> None:
        self.redis.xack(self.stream, PERSIST_GROUP, *[e.id for e in entries])

    def quarantine(self, entry_id: bytes | str, fields: dict, reason: str) -> None:
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        company = fields.get(b"c", b"").decode(errors="replace")
        try:
            decoded = decode_entry(fields)
            events, payload = len(decoded), encode_events(decoded)  # with derived session ids folded in
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            events, payload = 0, fields.get(b"e", b"")
        try:
            company_id = uuid.UUID(company)
        except ValueError:
            company_id = None
        Quarantine.create(company_id=company_id, stream=self.stream, entry_id=entry_id, events=events,
                          payload=payload, reason=reason[:2000])
        self.redis.xadd(DEAD_LETTER_STREAM, {**fields, b"reason": reason.encode(), b"source": entry_id.encode()})
        self.redis.xack(self.stream, PERSIST_GROUP, entry_id)
        log_event(log, "entry quarantined", level=logging.WARNING, shard=self.shard, entry=entry_id, reason=reason)

    # The pump.
    def run(self, lease: Lease, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.ensure_group()
        with database.connection_context():
            self.persist(self.claim_stale(), deadline)
            while time.monotonic() < deadline and lease.renew():
                wait = min(self.settings.persist_batch_seconds, max(0.0, deadline - time.monotonic()))
                self.persist(self.read_batch(wait), deadline)


redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=30, socket_connect_timeout=2)
clickhouse_clients = PerThread(settings.clickhouse_url, timeout=30)


@dramatiq.actor(actor_name=PERSIST_SHARD, max_retries=0, time_limit=10 * 60_000)
def persist_shard(shard: int) -> None:
    client, clickhouse = redis_client, clickhouse_clients.get()
    lease = Lease(client, redis_keys.persist_lease(shard), ttl_seconds=settings.persist_claim_idle_seconds / 2)
    if not lease.acquire():
        return
    client.delete(redis_keys.persist_queued(shard))  # running now: the scheduler may queue a new one if this dies
    try:
        Persister(settings, client, clickhouse, shard).run(lease, settings.persist_pump_seconds)
    finally:
        lease.release()
        persist_shard.send(shard)
