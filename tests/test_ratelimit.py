"""The Redis token bucket shared by every web worker."""

from __future__ import annotations

import time

from adtivity.ratelimit import Limit, RateLimiter


def test_bucket_admits_its_capacity_then_refuses_with_a_wait(redis_client):
    limiter = RateLimiter(redis_client)
    limit = Limit(capacity=3, per_second=1)
    assert [limiter.take("t", "a", limit).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.take("t", "a", limit)
    assert not refused.allowed and refused.retry_after == 1
    assert limiter.take("t", "b", limit).allowed  # another subject has its own bucket


def test_bucket_refills_over_time(redis_client):
    limiter = RateLimiter(redis_client)
    limit = Limit(capacity=2, per_second=1)
    now = time.time()  # moved by hand below: no sleeping
    assert limiter.take("t", "c", limit, now=now).allowed and limiter.take("t", "c", limit, now=now).allowed
    assert not limiter.take("t", "c", limit, now=now + 0.5).allowed
    assert limiter.take("t", "c", limit, now=now + 1.1).allowed


def test_per_minute_limit_tells_how_long_to_wait(redis_client):
    limiter = RateLimiter(redis_client)
    limit = Limit.per_minute(1)
    assert limiter.take("t", "d", limit).allowed
    assert limiter.take("t", "d", limit).retry_after in (59, 60)
