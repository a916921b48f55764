"""The de-duplication filter in front of `event_ids` (dedup/): it answers for new ids only once it
covers a whole window, never forgets an id within the window, starts again when lost, evicted or
resized, and a rebuild from ClickHouse makes it answer at once; through the persist pump, resends
count once whether the filter is trusted, lost mid-run, or rebuilt."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from adtivity.cli import rebuild_dedup
from dedup.filter import GENERATIONS, JOURNAL_ELEMENTS, FilterShape, ShardFilter, id_hashes
from dedup.rebuild import Rebuild
from models import redis_keys
from models.clickhouse import clickhouse_client
from tests.ingest_helpers import tenant
from tests.pipeline_helpers import NOW, drain, send, stored
from workers.persist import EventsPump

DAY_MS = 86_400_000


@pytest.fixture
def dedup_settings(settings):
    """Small filters, and a rebuild that need not wait for a young filter to settle."""
    return dataclasses.replace(settings, dedup_filter_ids_per_day=30_000, dedup_settle_seconds=1)


def trusted_filter(settings, redis_client) -> ShardFilter:
    """Shard 0's filter, covering a whole window: as a rebuild of the (empty) store leaves it, without
    the rebuild's wait for a new filter to settle (rebuilds have tests of their own below)."""
    shard_filter = ShardFilter(settings, redis_client, 0)
    shard_filter.check_and_add("", [])
    redis_client.hset(redis_keys.dedup_meta(0), "since", 0)
    return shard_filter


def message_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_the_hash_is_the_one_clickhouse_computes(settings):
    clickhouse = clickhouse_client(settings.clickhouse_url)
    for company, message_id in [
        (str(uuid.uuid4()), str(uuid.uuid4())),
        (str(uuid.uuid4()), "a-b"),
        (str(uuid.uuid4()), "ünïcødé ✓ \\ ' \t"),
        (str(uuid.uuid4()), "x" * 300),
    ]:
        in_clickhouse = clickhouse.query(
            "SELECT reinterpretAsUInt64(murmurHash3_128(concat(toString(toUUID(%(c)s)), '\\0', %(m)s)))",
            parameters={"c": company, "m": message_id},
        ).result_rows[0][0]
        assert in_clickhouse == int(id_hashes(company, [message_id])[0])


def test_a_new_filter_answers_maybe_until_it_covers_a_window(dedup_settings, redis_client):
    """Born now, it holds no ids stored before: every id must be looked up exactly, until a window
    later (or a rebuild)."""
    shard_filter = ShardFilter(dedup_settings, redis_client, 0)
    now = int(time.time() * 1000)
    first = message_ids(50)
    assert shard_filter.check_and_add("c1", first, now_ms=now) == [True] * 50
    window = shard_filter.shape.window_ms
    later = now + window + 1
    assert shard_filter.check_and_add("c1", message_ids(50), now_ms=later) == [False] * 50
    assert shard_filter.check_and_add("c1", first, now_ms=later) == [True] * 50  # still within the window


def test_a_trusted_filter_passes_new_ids_and_catches_every_seen_one(dedup_settings, redis_client):
    shard_filter = trusted_filter(dedup_settings, redis_client)
    seen = message_ids(20_000)
    assert sum(shard_filter.check_and_add("c1", seen)) < 20_000 * 0.01  # the first time: new, bar false positives
    assert all(shard_filter.check_and_add("c1", seen))  # never a false "new"
    fresh = message_ids(20_000)
    false_positives = sum(shard_filter.check_and_add("c1", fresh)) / len(fresh)
    assert false_positives < 0.01, false_positives
    assert sum(shard_filter.check_and_add("c2", seen[:1000])) < 50  # the same message ids of another company


def test_an_id_stays_a_window_and_goes_after_a_window_and_a_third(dedup_settings, redis_client):
    shard_filter = trusted_filter(dedup_settings, redis_client)
    now = int(time.time() * 1000)
    ids = message_ids(100)
    shard_filter.check_and_add("c1", ids, now_ms=now)
    shape = shard_filter.shape
    assert all(shard_filter.check_and_add("c1", ids, now_ms=now + shape.window_ms))  # (which adds them again)
    gone = now + shape.window_ms + (GENERATIONS + 1) * shape.generation_ms
    assert sum(shard_filter.check_and_add("c1", ids, now_ms=gone)) < 5


@pytest.mark.parametrize("loss", ["flushed", "the journal evicted", "a snapshot evicted", "resized"])
def test_a_lost_or_changed_filter_starts_again_and_answers_maybe(dedup_settings, redis_client, loss):
    shard_filter = trusted_filter(dedup_settings, redis_client)
    assert shard_filter.check_and_add("c1", message_ids(10)) == [False] * 10
    if loss == "flushed":
        redis_client.flushdb()
    elif loss == "the journal evicted":
        assert redis_client.delete(redis_keys.dedup_journal(0))
    elif loss == "a snapshot evicted":
        Rebuild(dedup_settings, redis_client, clickhouse_client(dedup_settings.clickhouse_url)).run()  # snapshots
        assert shard_filter.check_and_add("c1", message_ids(10)) == [False] * 10
        generation = shard_filter.shape.generation_of(int(time.time() * 1000))
        assert redis_client.delete(redis_keys.dedup_snapshot(0, generation - 1))
    else:
        shard_filter = ShardFilter(dataclasses.replace(dedup_settings, dedup_filter_bits_per_id=12), redis_client, 0)
    assert shard_filter.check_and_add("c1", message_ids(10)) == [True] * 10
    # ... and another process holding it in memory sees the loss too
    assert ShardFilter(dedup_settings, redis_client, 0).check_and_add("c1", message_ids(10)) == [True] * 10


def test_the_filter_survives_its_process_through_journal_and_snapshots(dedup_settings, redis_client):
    """A pump that moves to another worker (or a restarted one) finds every id the last one added:
    from the snapshots and the journal after them, however many snapshots were taken."""
    first = trusted_filter(dedup_settings, redis_client)
    batches = [message_ids(100) for _ in range(JOURNAL_ELEMENTS + 10)]  # enough to snapshot once
    for batch in batches:
        first.check_and_add("c1", batch)
    assert redis_client.llen(redis_keys.dedup_journal(0)) < JOURNAL_ELEMENTS
    generation = first.shape.generation_of(int(time.time() * 1000))
    assert redis_client.strlen(redis_keys.dedup_snapshot(0, generation)) == first.shape.generation_bytes
    second = ShardFilter(dedup_settings, redis_client, 0)
    assert all(all(second.check_and_add("c1", batch)) for batch in batches)
    late = message_ids(50)
    second.check_and_add("c1", late)  # the first one learns this from the journal
    assert all(first.check_and_add("c1", late))
    later = [message_ids(100) for _ in range(JOURNAL_ELEMENTS + 10)]
    for batch in later:  # the second snapshots and trims the journal past what the first applied
        second.check_and_add("c1", batch)
    assert all(all(first.check_and_add("c1", batch)) for batch in later)


def test_a_generation_is_sized_by_the_settings(dedup_settings):
    shape = FilterShape.from_settings(dedup_settings)
    # 30,000 ids a day for a third of 7 days, 24 bits each: 70,000 ids, 210,000 bytes (rounded up to blocks)
    assert shape.generation_bytes == pytest.approx(30_000 * 7 / 3 * 24 / 8, rel=0.01)
    assert shape.hashes == 8


def events_with_ids(ids: list[str], name: str) -> list[dict]:
    return [
        {"type": "track", "name": name, "user_id": "u", "message_id": message_id, "timestamp": NOW.isoformat() + "Z"}
        for message_id in ids
    ]


class CountingPump(EventsPump):
    """The persist pump, noting how many ids each batch looked up exactly."""

    exact: list[int] = []

    def maybe_stored(self, entries):
        maybe = super().maybe_stored(entries)
        CountingPump.exact.append(len(maybe))
        return maybe


def test_a_trusted_filter_spares_the_exact_look_up_and_resends_still_count_once(
    api, dedup_settings, redis_client, settings
):
    t = tenant(api)
    trusted_filter(dedup_settings, redis_client)
    ids = message_ids(300)
    CountingPump.exact = []
    send(api, t.write_key, events_with_ids(ids, "first"))
    drain(dedup_settings, redis_client, events_pump=CountingPump)
    assert stored(settings, t.company_id) == 300
    assert sum(CountingPump.exact) < 10  # new ids: the filter answered for nearly all of them
    CountingPump.exact = []
    send(api, t.write_key, events_with_ids(ids, "resent with a new timestamp"))  # Segment re-tracks this way
    drain(dedup_settings, redis_client, events_pump=CountingPump)
    assert stored(settings, t.company_id) == 300
    assert sum(CountingPump.exact) == 300


def test_losing_the_filter_mid_run_never_counts_twice(api, dedup_settings, redis_client, settings):
    """The filter is flushed after some events were stored: their resends are looked up exactly and
    dropped; after a rebuild the filter is trusted again and still catches them."""
    t = tenant(api)
    trusted_filter(dedup_settings, redis_client)
    ids = message_ids(200)
    send(api, t.write_key, events_with_ids(ids[:100], "before the loss"))
    drain(dedup_settings, redis_client)
    for key in redis_client.scan_iter(match=f"{redis_keys.PREFIX}:dedup:*"):
        redis_client.delete(key)
    send(api, t.write_key, events_with_ids(ids, "after the loss"))  # 100 resends, 100 new
    drain(dedup_settings, redis_client)
    assert stored(settings, t.company_id) == 200
    report = rebuild_dedup(dedup_settings, t.company_id, progress=False)
    assert report["ids"] == 200 and report["lost_meanwhile"] == []
    CountingPump.exact = []
    send(api, t.write_key, events_with_ids(ids + message_ids(100), "after the rebuild"))
    drain(dedup_settings, redis_client, events_pump=CountingPump)
    assert stored(settings, t.company_id) == 300
    assert 200 <= sum(CountingPump.exact) < 210  # the resends, looked up; the new ones not


def test_a_rebuild_does_not_vouch_for_a_filter_lost_while_it_ran(dedup_settings, redis_client):
    """A filter lost during a rebuild (here: after the rebuild read its meta) is not marked as
    covering the window."""
    rebuild = Rebuild(dedup_settings, redis_client, clickhouse_client(dedup_settings.clickhouse_url))
    real_read = rebuild.read

    def read_then_lose(*args, **kwargs):
        answer = real_read(*args, **kwargs)
        redis_client.delete(redis_keys.dedup_meta(0))
        ShardFilter(dedup_settings, redis_client, 0).check_and_add("c1", [])  # the pump makes it anew
        return answer

    rebuild.read = read_then_lose
    report = rebuild.run()
    assert report.lost_meanwhile == [0]
    assert ShardFilter(dedup_settings, redis_client, 0).check_and_add("c1", message_ids(5)) == [True] * 5


def test_a_rebuild_waits_for_a_young_filter_to_settle(dedup_settings, redis_client):
    """A pump may store an id up to DEDUP_SETTLE_SECONDS after checking it: the rebuild of a filter
    born less than that long ago first waits (here on a fake clock)."""
    moments = [time.time()]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        moments[0] += seconds

    settings = dataclasses.replace(dedup_settings, dedup_settle_seconds=30)
    ShardFilter(settings, redis_client, 0).check_and_add("c1", [], now_ms=int(moments[0] * 1000))
    Rebuild(
        settings, redis_client, clickhouse_client(settings.clickhouse_url), clock=lambda: moments[0], sleep=sleep
    ).run()
    assert 29 <= sum(waited) <= 31


def test_the_periodic_rebuild_takes_the_filters_made_anew_once_they_settled(dedup_settings, redis_client):
    """What the scheduler's `rebuild_dedup` job does: a filter made anew (here: new) is rebuilt once
    DEDUP_SETTLE_SECONDS old, and then trusted; a trusted one is left alone."""
    ShardFilter(dedup_settings, redis_client, 0).check_and_add("c1", [])
    clickhouse = clickhouse_client(dedup_settings.clickhouse_url)
    assert Rebuild(dedup_settings, redis_client, clickhouse).needed() == []  # not settled yet
    time.sleep(dedup_settings.dedup_settle_seconds + 0.1)
    later = Rebuild(dedup_settings, redis_client, clickhouse)
    assert later.needed() == [0]
    assert later.rebuild_shard(0, None, progress=False)[1]
    assert later.needed() == []
    assert ShardFilter(dedup_settings, redis_client, 0).check_and_add("c1", message_ids(10)) == [False] * 10


def test_a_filter_made_before_redis_restarted_is_started_again(dedup_settings, redis_client):
    """An append-only file written every second may lose the last appends across a restart, and their
    ids may be in ClickHouse: a filter made under another server run is not trusted."""
    shard_filter = trusted_filter(dedup_settings, redis_client)
    assert shard_filter.check_and_add("c1", message_ids(10)) == [False] * 10
    redis_client.hset(redis_keys.dedup_meta(0), "run", "a server run before a restart")
    assert shard_filter.check_and_add("c1", message_ids(10)) == [True] * 10
    assert shard_filter.made_anew
