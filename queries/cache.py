"""Answers cached in Redis, one code path for the query API and the analytics endpoints.

An answer is stored under its company and a digest of the question, stamped with the rollups' version
it was computed under and the moment it is fresh until. A new rollup run (a new version) or the end of
its freshness makes it stale. An answer is computed by one request at a time (a Redis lock a
question, SET NX with an expiry); requests meanwhile get the stale answer (stale-while-revalidate), or,
when there is none yet, wait for the one being computed, so a popular dashboard does not send the same
question to the stores from every viewer at once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from adtivity.settings import Settings
from models import redis_keys

CACHE_POLL_SECONDS = 0.02  # how often a request waiting for another's first answer looks for it


class AnswerCache:
    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings = settings
        self.redis = redis

    def answer(self, company_id: str, question: str, compute: Callable[[], tuple[bytes, bool]]) -> bytes:
        """The cached answer to `question`, or `compute()`'s: (the answer, whether it is settled: it
        changes only with the rollups, so it stays fresh ANALYTICS_CACHE_SECONDS; else it reaches past
        their watermark and stays fresh QUERY_LIVE_CACHE_SECONDS)."""
        digest = hashlib.blake2b(question.encode(), digest_size=16).hexdigest()
        key = redis_keys.query_answer(company_id, digest)
        refresh = redis_keys.query_refresh(company_id, digest)
        found: list[bytes | None] = self.redis.mget(redis_keys.rollup_version(company_id), key)
        version, cached = found[0] or b"none", found[1]
        if cached is not None:
            stamp, fresh_until, stale = cached.split(b"\n", 2)
            if stamp == version and float(fresh_until) > time.time():
                return stale
        computing = not self.redis.set(refresh, b"1", nx=True, ex=self.settings.query_timeout_seconds + 5)
        if computing and cached is not None:
            return stale  # another request is recomputing it
        if computing:  # and nothing to give meanwhile: wait for its answer rather than ask the stores too
            waited = self.wait_for(key, refresh)
            if waited is not None:
                return waited
        try:
            answer, settled = compute()
            seconds = self.settings.analytics_cache_seconds if settled else self.settings.query_live_cache_seconds
            fresh_until = str(time.time() + seconds).encode()
            self.redis.set(key, b"\n".join((version, fresh_until, answer)), ex=self.settings.analytics_cache_seconds)
        finally:
            self.redis.delete(refresh)  # a failed computation lets the next request try at once
        return answer

    def wait_for(self, key: str, refresh: str) -> bytes | None:
        """The answer another request is computing, once it is stored; None if that request gave up
        (its lock went without an answer) or took longer than a query may."""
        deadline = time.monotonic() + self.settings.query_timeout_seconds + 5
        while time.monotonic() < deadline:
            time.sleep(CACHE_POLL_SECONDS)  # a gevent worker yields here
            found: list[bytes | None] = self.redis.mget(key, refresh)
            cached, computing = found
            if cached is not None:
                return cached.split(b"\n", 2)[2]
            if computing is None:
                return None
        return None
