"""A stream pump: reads one Redis stream shard with a consumer group and hands batches to `store`,
acknowledging only what was stored. workers/persist.py and workers/entities.py are its two kinds.

One pump per (kind, shard) at a time, under a Redis lease. It reads batches (up to
PERSIST_BATCH_EVENTS events, closing PERSIST_BATCH_SECONDS after the previous batch; see read_batch)
and, first, claims entries left pending longer than PERSIST_CLAIM_IDLE_SECONDS (a crashed pump's, or
ones that failed). A store that is down is retried with backoff, holding the batch; if it stays
down, the run ends without reading more, so an outage leaves only that batch pending. An entry that
fails for another reason is isolated, its failures counted (in Redis, per entry), left pending for
later claims and, at PERSIST_MAX_FAILURES, quarantined (dead-letter stream plus the `quarantine`
table), then acknowledged. Only failures count: deliveries do not, since a crash or a long outage
redelivers entries that did nothing wrong. Each pump runs for PERSIST_PUMP_SECONDS, then its actor
enqueues a successor; the scheduler restarts any pump whose lease lapsed. When its worker process
begins to shut down (`STOPPING`), a pump stores and acknowledges what it has read and ends there,
so a restart waits for one batch, not for the rest of every pump's run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import clickhouse_connect.driver.exceptions as ch_errors
import msgspec
import peewee
import redis

from adtivity.lease import Lease
from adtivity.logs import log_event
from adtivity.metrics import PUMP_BATCH_EVENTS, PUMP_BATCH_SECONDS, PUMP_EVENTS, QUARANTINED
from adtivity.settings import Settings
from models import redis_keys
from models.db import database
from models.events import Event
from models.redis_client import UNAVAILABLE
from models.redis_streams import DEAD_LETTER_STREAM, decode_entry, decode_message_ids, encode_events, unpumped
from models.tracking import Quarantine

log = logging.getLogger(__name__)
TRANSIENT = (
    peewee.OperationalError,
    peewee.InterfaceError,
    ch_errors.OperationalError,
    *UNAVAILABLE,
    ConnectionError,
    TimeoutError,
)
MAX_BACKOFF_SECONDS = 10.0
# Set when this worker process begins to shut down (workers/lifecycle.py): pumps end after their batch.
STOPPING = threading.Event()


@dataclass
class Entry:
    id: str
    fields: dict
    message_ids: list[str]  # one an event, in the entry's order
    event_type: type = Event  # what `events` decodes to (see models.redis_streams.decode_entry)
    # Claimed from a pump that died, or held through a failed attempt: its store may have happened,
    # wholly or in part, without the acknowledgement.
    redelivered: bool = False

    @classmethod
    def read(cls, entry_id: str, fields: dict, event_type: type = Event) -> Entry:
        """An entry as read from a stream: its events are decoded now unless it lists its message ids
        ("m"), in which case only when asked for. Raises what decode_entry raises."""
        message_ids = decode_message_ids(fields)
        if message_ids is not None:
            return cls(entry_id, fields, message_ids, event_type)
        entry = cls(entry_id, fields, [], event_type)
        entry.message_ids = [event.message_id for event in entry.events]
        return entry

    @cached_property
    def events(self) -> list:
        return decode_entry(self.fields, self.event_type)

    @property
    def company(self) -> str:
        return self.fields[b"c"].decode()

    @property
    def source(self) -> str:
        """The "r" field: the request id (events stream) or the source entry id (entities stream)."""
        return self.fields.get(b"r", b"").decode()


class StreamPump:
    kind = "pump"
    event_type: type = Event  # what a batch's events decode to

    def __init__(self, settings: Settings, client: redis.Redis, stream: str, group: str, shard: int) -> None:
        self.settings = settings
        self.redis = client
        self.stream = stream
        self.group = group
        self.shard = shard
        self.consumer = f"{group}-{shard}"
        self.failures_key = redis_keys.pump_failures(stream, group)
        self.last_closed = float("-inf")  # when the last batch with entries closed (time.monotonic)

    def store(self, entries: list[Entry]) -> None:
        raise NotImplementedError

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # Reading.
    def read_batch(self, block_seconds: float) -> list[Entry]:
        """New entries, up to the batch's event count, waiting at most `block_seconds` for the first.
        A batch closes PERSIST_BATCH_SECONDS after the previous batch closed: under load, a shard's
        pump makes one ClickHouse insert a second (each insert is a part in each table, merged again
        later), not one for every few requests. When that time has already passed (a quiet shard),
        it closes as soon as the first entries are in, so a lone request is stored at once."""
        entries: list[Entry] = []
        events = 0
        close_at = time.monotonic() + block_seconds
        while events < self.settings.persist_batch_events:
            remaining_ms = int((close_at - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            answer = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=100, block=remaining_ms)
            if not answer:
                break
            if not entries:
                close_at = min(close_at, max(time.monotonic(), self.last_closed + self.settings.persist_batch_seconds))
            for entry_id, fields in answer[0][1]:
                entry = self.decode(entry_id, fields)
                if entry is not None:
                    entries.append(entry)
                    events += len(entry.message_ids)
        if entries:
            self.last_closed = time.monotonic()
        return entries

    def claim_stale(self) -> list[Entry]:
        """Entries left pending longer than the idle timeout (a crashed pump's, or ones that failed)."""
        idle_ms = self.settings.persist_claim_idle_seconds * 1000
        _, claimed, *_ = self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=idle_ms, start_id="0-0", count=500
        )
        entries = []
        for entry_id, fields in claimed:
            if fields is None:  # deleted from the stream meanwhile
                self.redis.xack(self.stream, self.group, entry_id)
                continue
            entry = self.decode(entry_id, fields)
            if entry is not None:
                entry.redelivered = True
                entries.append(entry)
        return entries

    def decode(self, entry_id: bytes, fields: dict) -> Entry | None:
        try:
            return Entry.read(entry_id.decode(), fields, self.event_type)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError) as error:
            self.quarantine(entry_id, fields, f"undecodable entry: {error}")
            return None

    # Storing.
    def persist(self, entries: list[Entry], deadline: float) -> bool:
        """Stores and acknowledges `entries`; what cannot be stored stays pending. False when the
        store stayed unavailable until `deadline`."""
        if not entries:
            return True
        backoff = 0.5
        while True:
            try:
                started = time.perf_counter()
                self.store(entries)
                self.ack(entries)
                events = sum(len(entry.message_ids) for entry in entries)
                PUMP_EVENTS.labels(self.kind).inc(events)
                PUMP_BATCH_EVENTS.labels(self.kind).observe(events)
                PUMP_BATCH_SECONDS.labels(self.kind).observe(time.perf_counter() - started)
                return True
            except TRANSIENT as error:
                for entry in entries:
                    entry.redelivered = True
                if time.monotonic() + backoff > deadline:
                    log_event(
                        log,
                        "store unavailable; batch left pending",
                        level=logging.WARNING,
                        pump=self.kind,
                        shard=self.shard,
                        entries=len(entries),
                        error=type(error).__name__,
                    )
                    return False
                log_event(
                    log,
                    "store unavailable; retrying",
                    level=logging.WARNING,
                    pump=self.kind,
                    shard=self.shard,
                    seconds=backoff,
                    error=type(error).__name__,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as error:  # a data problem: find the entries that have it
                if len(entries) == 1:
                    self.failed(entries[0], f"{type(error).__name__}: {error}")
                    return True
                return all([self.persist([entry], deadline) for entry in entries])

    def failed(self, entry: Entry, problem: str) -> None:
        failures = self.redis.hincrby(self.failures_key, entry.id, 1)
        if failures >= self.settings.persist_max_failures:
            self.quarantine(entry.id, entry.fields, f"failed {failures} times; last: {problem}")
        else:
            log_event(
                log,
                "entry failed; left pending for retry",
                level=logging.WARNING,
                pump=self.kind,
                shard=self.shard,
                entry=entry.id,
                failures=failures,
                error=problem,
            )

    def ack(self, entries: list[Entry]) -> None:
        ids = [entry.id for entry in entries]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *ids)
            pipe.hdel(self.failures_key, *ids)
            self.forget(pipe, ids)
            pipe.execute()

    def forget(self, pipe, ids: list[str]) -> None:
        """What else a kind of pump clears, in the same transaction, when entries are acknowledged."""

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
        with database.connection_context():
            Quarantine.create(
                company_id=company_id,
                stream=self.stream,
                entry_id=entry_id,
                events=events,
                payload=payload,
                reason=reason[:2000],
            )
        self.redis.xadd(DEAD_LETTER_STREAM, {**fields, b"reason": reason.encode(), b"source": entry_id.encode()})
        self.ack([Entry(entry_id, fields, [])])
        QUARANTINED.labels(self.kind).inc()
        log_event(
            log,
            "entry quarantined",
            level=logging.WARNING,
            pump=self.kind,
            shard=self.shard,
            entry=entry_id,
            request_id=fields.get(b"r", b"").decode(errors="replace"),
            reason=reason,
        )

    # The pump.
    def run(self, lease: Lease, seconds: float) -> None:
        """Stores batches until `seconds` pass or the lease is lost. The next batch is read while one is
        stored (the store's time is mostly spent waiting on ClickHouse or Postgres), and each batch is
        read only while the lease is held, and only until the worker process begins to shut down."""
        deadline = time.monotonic() + seconds
        self.ensure_group()
        if not self.persist(self.claim_stale(), deadline):
            return
        if not lease.renew():
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.kind}-read") as reader:
            reading = reader.submit(self.read_batch, self.batch_wait(deadline))
            while True:
                batch = reading.result()
                more = time.monotonic() < deadline and not STOPPING.is_set() and lease.renew()
                if more:
                    reading = reader.submit(self.read_batch, self.batch_wait(deadline))
                if not self.persist(batch, deadline):
                    return  # the store is down: the batch read ahead stays pending for a later run
                if not more:
                    return

    def batch_wait(self, deadline: float) -> float:
        return min(self.settings.persist_batch_seconds, max(0.0, deadline - time.monotonic()))


def run_pump(settings: Settings, client: redis.Redis, pump: StreamPump, lease_key: str, queued_key: str) -> bool:
    """Runs `pump` for PERSIST_PUMP_SECONDS if its lease is free. Whether a successor should follow:
    False if another pump holds the lease, or if the shard, one beyond STREAM_SHARDS left to drain
    (scheduler/main.py), is empty now."""
    client.delete(queued_key)  # this queued run has started: the scheduler may queue another if it ends
    lease = Lease(client, lease_key, ttl_seconds=settings.persist_claim_idle_seconds / 2)
    if not lease.acquire():
        return False
    try:
        pump.run(lease, settings.persist_pump_seconds)
    finally:
        lease.release()
    return pump.shard < settings.stream_shards or unpumped(client, pump.shard)
