"""The real-time aggregation logic (models/realtime.py) and the bridge's grouping, without a broker:
buckets, exactly-once application across redeliveries and partial crashes, late events, bots,
bounds, and the snapshot's windows."""

from __future__ import annotations

import datetime as dt
import json
import time

from models import realtime, redis_keys
from models.events import Event
from models.redis_streams import (
    PERSIST_GROUP,
    REALTIME_GROUP,
    backlog_since,
    encode_events,
    entities_stream_key,
    persisted_watch,
    realtime_watch,
    stream_key,
)
from streams.bridge import group_entries
from tests.ingest_helpers import tenant

NOW = 1_796_036_085.0  # 2026-11-30 10:54:45 UTC: fixed, so minute arithmetic is deterministic
COMPANY = "0b6e5c1e-8f43-4e6e-9d44-4b2f7d3c0a11"


def event(i: int, *, seconds_ago: float = 0, **fields) -> Event:
    moment = dt.datetime.fromtimestamp(NOW - seconds_ago, dt.UTC)
    values = {"type": "track", "name": "Clicked", "anonymous_id": f"anon{i}"} | fields
    return Event(company_id=COMPANY, message_id=f"m{i}", event_time=moment, received_at=moment, **values)


def message(entries: list[tuple[str, list[Event]]], shard: int = 0) -> realtime.BridgeMessage:
    return realtime.BridgeMessage(COMPANY, shard, [(entry_id, encode_events(events)) for entry_id, events in entries])


class Table(dict):
    """Bucket bytes by key, as the Faust table holds them."""

    def apply(self, bridge_message: realtime.BridgeMessage, now: float = NOW) -> dict:
        changed = realtime.apply_message(
            realtime.decode_message(realtime.encode_message(bridge_message)), self.get, now=now, lg_k=12, max_keys=3
        )
        self.update({key: realtime.encode_bucket(bucket) for key, bucket in changed.items()})
        return changed

    def view(self, now: float = NOW) -> dict:
        minutes, today = {}, None
        for key, value in self.items():
            _, kind, number = realtime.parse_key(key)
            if realtime.is_expired(kind, number, now):
                continue
            if kind == "m":
                minutes[number] = realtime.decode_bucket(value)
            else:
                today = realtime.decode_bucket(value)
        return realtime.snapshot(minutes, today, now=now, lg_k=12)


def test_counts_windows_and_distinct_users():
    table = Table()
    table.apply(
        message(
            [
                ("1-0", [event(i, seconds_ago=i * 60, user_id=f"u{i % 4}") for i in range(5)]),
                (
                    "2-0",
                    [
                        event(20, type="page", page_path="/pricing", seconds_ago=30),
                        event(21, seconds_ago=20 * 60, user_id="twenty minutes ago"),
                        event(22, seconds_ago=45 * 60, user_id="forty-five minutes ago"),
                        event(23, seconds_ago=3 * 3600, user_id="three hours ago"),
                    ],
                ),
            ]
        )
    )
    view = table.view()
    assert view["last_hour"]["events"] == 8
    assert view["last_hour"]["by_type"] == {"track": 7, "page": 1}
    assert view["last_hour"]["top_pages"] == [{"name": "/pricing", "count": 1}]
    assert view["per_minute"][-1]["events"] == 2 and view["per_minute"][-1]["page_views"] == 1
    assert view["active_users"] == {"last_5_minutes": 5, "last_30_minutes": 6, "last_60_minutes": 7, "today": 8}
    assert view["today"] == {"events": 9, "page_views": 1}
    assert len(view["per_minute"]) == realtime.WINDOW_MINUTES


def test_a_redelivered_message_changes_nothing():
    table = Table()
    first = message([("5-0", [event(1), event(2)]), ("6-0", [event(3)])])
    table.apply(first)
    before = dict(table)
    assert table.apply(first) == {}
    assert table == before
    assert table.view()["last_hour"]["events"] == 3


def test_a_crash_that_stored_some_buckets_is_repaired_by_the_redelivery_without_double_counting():
    whole = Table()
    batch = message([("7-0", [event(1, seconds_ago=0), event(2, seconds_ago=600)])])
    whole.apply(batch)
    crashed = Table()
    changed = realtime.apply_message(batch, crashed.get, now=NOW, lg_k=12, max_keys=3)
    stored_first = sorted(changed)[0]
    crashed[stored_first] = realtime.encode_bucket(changed[stored_first])  # only one bucket reached the changelog
    crashed.apply(batch)  # the redelivery
    assert crashed == whole


def test_redelivered_entries_are_skipped_while_new_ones_in_the_same_message_count():
    table = Table()
    table.apply(message([("8-0", [event(1)])]))
    table.apply(message([("8-0", [event(1)]), ("9-0", [event(2)])]))
    assert table.view()["last_hour"]["events"] == 2
    table.apply(message([("8-0", [event(3)])], shard=1))  # marks are per shard
    assert table.view()["last_hour"]["events"] == 3


def test_bots_and_events_older_than_the_windows_are_left_out():
    table = Table()
    table.apply(message([("1-0", [event(1, is_bot=True), event(2, seconds_ago=2 * 3600), event(3)])]))
    view = table.view()
    assert view["last_hour"]["events"] == 1
    assert sum(minute["events"] for minute in view["per_minute"]) == 1
    assert view["today"]["events"] == 2  # two hours before NOW is the same UTC day


def test_a_late_event_does_not_disturb_current_windows():
    table = Table()
    table.apply(message([("1-0", [event(1), event(2, seconds_ago=120)])]))
    before = table.view()
    table.apply(message([("2-0", [event(3, seconds_ago=3 * 3600, user_id="late")])]))
    after = table.view()
    assert after["per_minute"] == before["per_minute"] and after["last_hour"] == before["last_hour"]
    assert after["active_users"]["last_60_minutes"] == before["active_users"]["last_60_minutes"]


def test_windows_move_with_time_and_old_buckets_expire():
    table = Table()
    table.apply(message([("1-0", [event(1, seconds_ago=50 * 60)])]))
    assert table.view()["last_hour"]["events"] == 1
    later = NOW + 15 * 60
    assert table.view(later)["last_hour"]["events"] == 0
    expired = [key for key in table if realtime.is_expired(*realtime.parse_key(key)[1:], later)]
    assert expired == [realtime.minute_key(COMPANY, int((NOW - 50 * 60) // 60))]


def test_web3_and_payments():
    table = Table()
    table.apply(
        message(
            [
                (
                    "1-0",
                    [
                        event(1, type="wallet_connect", wallet_address="0xAbC", chain_id="1"),
                        event(
                            2,
                            type="transaction",
                            wallet_address="0xabc",
                            chain_id="1",
                            status="confirmed",
                            tx_value="1000000000000000000000000000001",
                            token="ETH",
                        ),
                        event(
                            3,
                            type="transaction",
                            wallet_address="0xdef",
                            chain_id="1",
                            status="confirmed",
                            tx_value="1",
                            token="ETH",
                        ),
                        event(4, type="transaction", chain_id="137", status="failed"),
                        event(5, type="payment", status="completed", amount="9.99", currency="USD"),
                        event(6, type="payment", status="completed", amount="0.01", currency="USD"),
                        event(7, type="payment", status="failed", amount="5", currency="USD"),
                    ],
                )
            ]
        )
    )
    view = table.view()
    assert view["web3"] == {
        "wallet_connects": 1,
        "distinct_wallets": 2,
        "transactions": [
            {"chain_id": "1", "status": "confirmed", "count": 2},
            {"chain_id": "137", "status": "failed", "count": 1},
        ],
        "transaction_value": [{"chain_id": "1", "token": "ETH", "value": "1000000000000000000000000000002"}],
    }
    assert view["payments"] == {"completed": 2, "revenue": [{"currency": "USD", "amount": "10.00"}]}


def test_distinct_names_per_bucket_are_bounded():
    table = Table()
    table.apply(message([("1-0", [event(i, name=f"name{i}") for i in range(6)])]))
    top = {row["name"]: row["count"] for row in table.view()["last_hour"]["top_events"]}
    assert top == {"name0": 1, "name1": 1, "name2": 1, realtime.OTHER: 3}


def test_an_empty_snapshot_has_every_field_at_zero():
    view = realtime.snapshot({}, None, now=NOW, lg_k=12)
    assert view["last_hour"]["events"] == 0 and view["active_users"]["today"] == 0
    assert view["web3"]["transactions"] == [] and view["payments"]["revenue"] == []


def test_the_bridge_groups_by_company_in_order_and_splits_by_size():
    entries = [(f"{i}-0".encode(), {b"c": (b"a" if i % 2 else b"b"), b"e": b"x" * 40}) for i in range(6)]
    messages = group_entries(entries, shard=2, max_bytes=100)
    assert [(m.company_id, [entry_id for entry_id, _ in m.entries]) for m in messages] == [
        ("b", ["0-0", "2-0"]),
        ("a", ["1-0", "3-0"]),
        ("b", ["4-0"]),
        ("a", ["5-0"]),
    ]
    assert all(m.shard == 2 for m in messages)


def test_the_api_serves_the_snapshot_with_as_of_and_says_when_it_is_stale(api, settings, redis_client):
    t = tenant(api)
    path = f"/v1/companies/{t.company_id}/realtime"
    nothing_yet = api.get(path, auth=t.read_key).json
    assert nothing_yet["stale"] is True and nothing_yet["as_of"] is None
    assert nothing_yet["last_hour"]["events"] == 0

    view = realtime.snapshot({}, None, now=time.time(), lg_k=12)
    view["last_hour"]["events"] = 42
    redis_client.set(redis_keys.realtime_snapshot(t.company_id), json.dumps(view))
    redis_client.set(redis_keys.REALTIME_AS_OF, time.time() - 1)
    fresh = api.get(path, auth=t.owner).json
    assert fresh["stale"] is False and fresh["last_hour"]["events"] == 42 and fresh["company_id"] == t.company_id

    redis_client.set(redis_keys.REALTIME_AS_OF, time.time() - settings.realtime_stale_seconds - 1)
    old = api.get(path, auth=t.read_key).json
    assert old["stale"] is True and old["last_hour"]["events"] == 42
    assert dt.datetime.fromisoformat(old["as_of"]) < dt.datetime.now(dt.UTC) - dt.timedelta(
        seconds=settings.realtime_stale_seconds
    )


def test_the_snapshots_are_current_up_to_the_oldest_entry_either_group_has_not_acknowledged(redis_client):
    shards = 2  # an events stream of one shard and an entities stream of another

    def watermark(now: float) -> float:
        return backlog_since(redis_client, realtime_watch(shards), now)

    now = time.time()
    assert watermark(now) == now  # no streams at all
    events, entities = stream_key(0), entities_stream_key(1)
    redis_client.xgroup_create(events, PERSIST_GROUP, id="0", mkstream=True)
    redis_client.xgroup_create(entities, REALTIME_GROUP, id="0", mkstream=True)
    redis_client.xadd(events, {"e": "x"}, id="1000000-0")  # accepted, not yet read by the persist pump
    redis_client.xadd(entities, {"e": "x"}, id="2000000-0")
    assert watermark(now) == 1000.0
    redis_client.xreadgroup(PERSIST_GROUP, "p", {events: ">"})  # read, still pending
    assert watermark(now) == 1000.0
    redis_client.xack(events, PERSIST_GROUP, "1000000-0")
    assert watermark(now) == 2000.0  # the bridge has not read its entry yet
    assert backlog_since(redis_client, persisted_watch(shards), now) == now
    redis_client.xreadgroup(REALTIME_GROUP, "r", {entities: ">"})
    redis_client.xack(entities, REALTIME_GROUP, "2000000-0")
    assert watermark(now) == now
