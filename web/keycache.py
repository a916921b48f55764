"""API-key lookup for every request that presents a key, cached per web worker.

A key is found by its public id in one indexed query; its secret is compared as a SHA-256 digest in
constant time, so a wrong key costs the same as a right one. Records (also "no such key") are cached
for `ttl` seconds; a background thread writes the keys' `last_used_at` every `usage_interval`
seconds. Revocation must not wait for the TTL: `announce_revoked` publishes on a Redis
channel, and each cache's listener thread evicts at once (every worker within milliseconds). If the
listener loses Redis it clears the whole cache when it reconnects, since it may have missed messages.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import peewee
import redis

from accounts.security import KeyString, digests_match
from adtivity.logs import log_event
from models import redis_keys
from models.accounts import ApiKey, Company
from models.db import database, utcnow

log = logging.getLogger(__name__)
SUBSCRIBE_WAIT_SECONDS = 0.25


@dataclass(frozen=True)
class KeyRecord:
    key_id: uuid.UUID
    public_id: str
    company_id: uuid.UUID
    kind: str
    secret_digest: str
    expires_at: dt.datetime | None


def announce_revoked(client: redis.Redis, *, public_ids: list[str] = (), company_id: uuid.UUID | None = None) -> None:
    """Tells every web worker to forget these keys (or all keys of a company): a message each, sent
    one by one (a Redis Cluster's pipelines refuse PUBLISH; revocations are rare)."""
    messages = [f"key:{public_id}" for public_id in public_ids]
    if company_id is not None:
        messages.append(f"company:{company_id}")
    for message in messages:
        client.publish(redis_keys.KEY_INVALIDATION_CHANNEL, message)


class KeyCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float,
        usage_interval: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._client = client
        self._clock = clock  # what "now" is for key expiry (tests move it)
        self._ttl = ttl
        self._max_entries = max_entries
        self._usage_interval = usage_interval
        self._used: dict[uuid.UUID, dt.datetime] = {}
        self._entries: dict[str, tuple[float, KeyRecord | None]] = {}
        self._generation = 0  # bumped by every eviction, so a lookup racing one does not cache stale data
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._stopping = threading.Event()

    def authenticate(self, presented: KeyString) -> KeyRecord | None:
        """The record of a live key whose secret matches, else None."""
        self._ensure_listening()
        record = self._lookup(presented.public_id)
        if record is None or record.kind != presented.kind:
            return None
        if not digests_match(presented.secret, record.secret_digest):
            return None
        now = self._clock()
        if record.expires_at is not None and record.expires_at <= now:
            return None
        self._used[record.key_id] = now
        return record

    def _write_usage(self) -> None:
        """Every `usage_interval`, writes the keys' last use; a request never waits on Postgres for it
        (so ingest keeps working with cached keys while Postgres is down)."""
        while not self._stopping.wait(self._usage_interval):
            used, self._used = self._used, {}
            bound = database.obj  # the proxy may be re-bound meanwhile; enter and leave the same database
            try:
                with bound.connection_context():
                    for key_id, moment in used.items():
                        ApiKey.update(last_used_at=moment).where(ApiKey.id == key_id).execute()
            except peewee.PeeweeException as error:
                log_event(
                    log, "could not record key use; will retry", level=logging.WARNING, error=type(error).__name__
                )
                self._used = {**used, **self._used}

    def _lookup(self, public_id: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._entries.get(public_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        record = self._load(public_id)
        with self._lock:
            if generation == self._generation:
                self._entries.pop(public_id, None)
                if len(self._entries) >= self._max_entries:  # bounded: a flood of made-up ids cannot grow it
                    del self._entries[next(iter(self._entries))]
                self._entries[public_id] = (now + self._ttl, record)
        return record

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _load(public_id: str) -> KeyRecord | None:
        row = (
            ApiKey.select(
                ApiKey.id, ApiKey.public_id, ApiKey.company, ApiKey.kind, ApiKey.secret_digest, ApiKey.expires_at
            )
            .join(Company)
            .where(ApiKey.public_id == public_id, ApiKey.revoked_at.is_null(), Company.deleted_at.is_null())
            .first()
        )
        if row is None:
            return None
        return KeyRecord(row.id, row.public_id, row.company_id, row.kind, row.secret_digest, row.expires_at)

    def evict(self, message: str) -> None:
        kind, _, value = message.partition(":")
        with self._lock:
            self._generation += 1
            if kind == "key":
                self._entries.pop(value, None)
            elif kind == "company":
                for public_id, (_, record) in list(self._entries.items()):
                    if record is not None and str(record.company_id) == value:
                        del self._entries[public_id]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _ensure_listening(self) -> None:
        if self._listener is not None:
            return
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="key-cache-invalidation", daemon=True)
                self._writer = threading.Thread(target=self._write_usage, name="key-usage-writer", daemon=True)
                self._listener.start()
                self._writer.start()
        # Nothing is cached before the subscription is live, or an invalidation sent meanwhile would be missed.
        self._subscribed.wait(SUBSCRIBE_WAIT_SECONDS)

    def close(self, wait: float = 0.0) -> None:
        """Stops the listener and the usage writer (within a second; waits up to `wait` seconds for
        them); key use not yet written is dropped."""
        self._stopping.set()
        for thread in (self._listener, self._writer):
            if thread is not None:
                thread.join(wait)

    @property
    def running(self) -> bool:
        return any(thread is not None and thread.is_alive() for thread in (self._listener, self._writer))

    def _listen(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(redis_keys.KEY_INVALIDATION_CHANNEL)
                pubsub.get_message(ignore_subscribe_messages=False, timeout=SUBSCRIBE_WAIT_SECONDS)
                self.clear()
                self._subscribed.set()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.evict(message["data"].decode())
            except redis.RedisError as error:
                log_event(log, "key invalidation listener lost redis", level=logging.WARNING, error=str(error))
                self._stopping.wait(1.0)
            finally:
                pubsub.close()
