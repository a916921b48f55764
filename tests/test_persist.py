"""Persistence into ClickHouse and Postgres with a real pump on the real stores: exactly once across
resends and crashes, entities, quarantine and replay, stream trimming, and reading events back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import clickhouse_connect.driver.exceptions as ch_errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adtivity.jobs import ENTITIES_SHARD, PERSIST_SHARD
from adtivity.lease import Lease
from adtivity.metrics import REPEATED_HAND_OVERS
from models import redis_keys
from models.clickhouse import PerThread, clickhouse_client
from models.db import database
from models.events_table import NO_SESSION, insert_rows
from models.redis_streams import (
    PERSIST_GROUP,
    decode_entry,
    entities_stream_key,
    entry_fields,
    pack,
    shard_for,
    stranded_shards,
    stream_key,
    unpack,
)
from models.tracking import EndUser, Identity, PaymentSession, Quarantine, Session, Wallet
from scheduler.leader import Leadership
from scheduler.main import build_scheduler
from tests.ingest_helpers import tenant
from tests.pipeline_helpers import drain, run_pumps, stored
from tests.processes import free_port
from workers.entities import EntitiesPump
from workers.persist import EventsPump
from workers.pump import STOPPING, run_pump
from workers.trim import trim_all


def mixed_events(n: int, start: dt.datetime) -> list[dict]:
    events = []
    for i in range(n):
        moment = (start + dt.timedelta(seconds=i)).isoformat()
        kind = i % 4
        if kind == 0:
            events.append(
                {
                    "type": "page",
                    "anonymous_id": f"anon{i % 7}",
                    "message_id": f"m{i}",
                    "timestamp": moment,
                    "context": {"page": {"url": f"https://ex.com/p{i % 3}", "path": f"/p{i % 3}"}},
                }
            )
        elif kind == 1:
            events.append(
                {
                    "type": "identify",
                    "user_id": f"user{i % 5}",
                    "anonymous_id": f"anon{i % 7}",
                    "message_id": f"m{i}",
                    "timestamp": moment,
                    "traits": {"n": i},
                }
            )
        elif kind == 2:
            events.append(
                {
                    "type": "wallet_connect",
                    "user_id": f"user{i % 5}",
                    "message_id": f"m{i}",
                    "wallet_address": f"0x{i % 3:040x}",
                    "chain_id": str(1 + (i // 4) % 2),
                    "timestamp": moment,
                }
            )
        else:
            events.append(
                {
                    "type": "payment",
                    "user_id": f"user{i % 5}",
                    "message_id": f"m{i}",
                    "timestamp": moment,
                    "payment_id": f"pay{i % 3}",
                    "status": "completed",
                    "amount": "5.25",
                    "currency": "USD",
                }
            )
    return events


def entity_snapshot(company_id: str) -> dict:
    with database.connection_context():
        return {
            model.__name__: sorted(map(str, model.select().where(model.company_id == company_id).dicts()))
            for model in (EndUser, Identity, Wallet, Session, PaymentSession)
        }


def test_events_land_once_with_their_entities_and_a_resend_changes_nothing(api, settings, redis_client):
    t = tenant(api)
    events = mixed_events(40, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert api.post("/v1/events", auth=t.write_key, json=events).json["accepted"] == 40
    drain(settings, redis_client)
    assert stored(settings, t.company_id) == 40
    before = entity_snapshot(t.company_id)
    assert len(before["EndUser"]) == 5 and len(before["Wallet"]) == 3 and len(before["PaymentSession"]) == 3
    with database.connection_context():
        wallet = Wallet.get(Wallet.company_id == t.company_id, Wallet.address == f"0x{2:040x}")
        assert wallet.chains == ["1", "2"] and wallet.user_id
        assert sum(s.events for s in Session.select().where(Session.company_id == t.company_id)) == 40
        assert Identity.select().where(Identity.company_id == t.company_id, Identity.kind == "anonymous").count() == 7

    assert api.post("/v1/events", auth=t.write_key, json=events[:25]).json["accepted"] == 25
    assert api.post("/v1/events", auth=t.write_key, json=events[10:]).json["accepted"] == 30
    drain(settings, redis_client)
    assert stored(settings, t.company_id) == 40
    assert entity_snapshot(t.company_id) == before


def test_duplicates_within_one_batch_are_stored_once(api, settings, redis_client):
    t = tenant(api)
    event = {"type": "track", "name": "dup", "user_id": "u", "message_id": "same"}
    api.post("/v1/events", auth=t.write_key, json=[event, event, event, {**event, "message_id": "other"}])
    drain(settings, redis_client)
    assert stored(settings, t.company_id) == 2
    # Only part of the entry was new: that part alone reached the entities, with its session id.
    with database.connection_context():
        sessions = list(Session.select().where(Session.company_id == t.company_id))
    assert [s.events for s in sessions] == [2] and sessions[0].session_id


class CrashOnInsert:
    """A ClickHouse client whose next INSERT dies, as the process would in the middle of it."""

    def __init__(self, real) -> None:
        self.real = real
        self.crashes = 1

    def insert(self, *args, **kwargs):
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("simulated crash during the ClickHouse insert")
        return self.real.insert(*args, **kwargs)

    def query(self, *args, **kwargs):
        return self.real.query(*args, **kwargs)


def pending(redis_client, settings) -> int:
    return sum(redis_client.xpending(stream_key(s), PERSIST_GROUP)["pending"] for s in range(settings.stream_shards))


def session_events(company_id: str) -> int:
    with database.connection_context():
        return sum(s.events for s in Session.select().where(Session.company_id == company_id))


def test_a_crash_before_the_insert_loses_nothing(api, settings, redis_client):
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0)
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(12, dt.datetime.now(dt.UTC)))
    drain(fast, redis_client, CrashOnInsert(clickhouse_client(settings.clickhouse_url)))
    assert stored(settings, t.company_id) == 0 and session_events(t.company_id) == 0
    assert pending(redis_client, settings) == 1
    drain(fast, redis_client)  # the next pump claims the entry
    assert stored(settings, t.company_id) == 12
    assert session_events(t.company_id) == 12


def test_a_crash_after_the_insert_before_the_hand_over_loses_no_entity(api, settings, redis_client):
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0)
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(10, dt.datetime.now(dt.UTC)))

    class DiesBeforeHandOver(EventsPump):
        def hand_over(self, entries, to_forward):
            raise RuntimeError("simulated crash after the ClickHouse insert")

    drain(fast, redis_client, events_pump=DiesBeforeHandOver)
    assert stored(settings, t.company_id) == 10 and session_events(t.company_id) == 0
    drain(fast, redis_client)  # the retry finds its own rows stored and hands them over
    assert stored(settings, t.company_id) == 10
    assert session_events(t.company_id) == 10


def test_a_crash_after_the_hand_over_before_the_ack_stores_nothing_twice(api, settings, redis_client):
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0)
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(8, dt.datetime.now(dt.UTC)))

    class NoAck(EventsPump):
        def ack(self, entries):
            pass

    drain(fast, redis_client, events_pump=NoAck)
    assert stored(settings, t.company_id) == 8 and session_events(t.company_id) == 8
    drain(fast, redis_client)  # redelivered: stored already and handed over already
    assert stored(settings, t.company_id) == 8
    assert pending(redis_client, settings) == 0
    assert session_events(t.company_id) == 8
    handed = [
        fields
        for shard in range(settings.stream_shards)
        for _, fields in redis_client.xrange(entities_stream_key(shard))
    ]
    assert len(handed) == 1 and len(decode_entry(handed[0])) == 8
    assert not any(redis_client.exists(redis_keys.handed_over(shard)) for shard in range(settings.stream_shards))


def send_track(api, t, message_id: str) -> None:
    answer = api.post(
        "/v1/events", auth=t.write_key, json={"type": "track", "name": "n", "user_id": "u", "message_id": message_id}
    )
    assert answer.json["accepted"] == 1


def reading_pump(settings, redis_client, t) -> EventsPump:
    """A persist pump on the tenant's shard, for reading batches (it has no ClickHouse)."""
    pump = EventsPump(settings, redis_client, lambda: None, shard_for(t.company_id, settings.stream_shards))
    pump.ensure_group()
    return pump


def test_a_batch_stops_reading_at_the_configured_number_of_events(api, settings, redis_client):
    """PERSIST_BATCH_EVENTS: a batch reads entries (up to 100 a read) until it holds that many events."""
    t = tenant(api)
    for number in range(150):
        send_track(api, t, f"m{number}")
    pump = reading_pump(dataclasses.replace(settings, persist_batch_events=100), redis_client, t)
    assert len(pump.read_batch(1.0)) == 100
    assert len(pump.read_batch(1.0)) == 50
    assert pump.read_batch(0.1) == []


def test_a_batch_closes_its_batch_seconds_after_the_previous_one(api, settings, redis_client):
    """PERSIST_BATCH_SECONDS: entries that arrive within that time of the previous batch join one
    batch, so a busy shard's pump makes one insert per that many seconds, not one for every few
    requests; on a quiet shard the first entries make a batch at once."""
    t = tenant(api)
    pump = reading_pump(dataclasses.replace(settings, persist_batch_seconds=1.0), redis_client, t)
    send_track(api, t, "m0")
    started = time.monotonic()
    assert [entry.message_ids for entry in pump.read_batch(1.5)] == [["m0"]]
    assert time.monotonic() - started < 0.5  # a quiet shard: at once
    with ThreadPoolExecutor(max_workers=1) as reader:
        reading = reader.submit(pump.read_batch, 1.5)
        time.sleep(0.3)
        send_track(api, t, "m1")
        time.sleep(0.3)
        send_track(api, t, "m2")
        last_sent = time.monotonic()
        batch = reading.result()
    assert [entry.message_ids for entry in batch] == [["m1"], ["m2"]]
    assert time.monotonic() - last_sent > 0.2  # it went on waiting after the last entry
    assert time.monotonic() - started >= 1.0


def test_default_batch_size_is_the_documented_one(settings):
    assert settings.persist_batch_events == 20_000


def test_a_poison_entry_is_quarantined_then_replayed(api, settings, redis_client):
    """The wallets table is gone, so the entry's entities cannot be written: its events still reach
    ClickHouse (separate failure domains); the entities part is retried, quarantined, and replayed
    once the table is back."""
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0, persist_max_failures=2)
    t = tenant(api)
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[
            {"type": "wallet_connect", "user_id": "u", "wallet_address": "0x" + "1" * 40, "chain_id": "1"},
            {"type": "track", "name": "with it", "user_id": "u"},
        ],
    )
    with database.connection_context():
        database.execute_sql("ALTER TABLE wallets RENAME TO wallets_away")
    try:
        for _ in range(3):
            drain(fast, redis_client)
    finally:
        with database.connection_context():
            database.execute_sql("ALTER TABLE wallets_away RENAME TO wallets")
    assert stored(settings, t.company_id) == 2
    with database.connection_context():
        assert not EndUser.select().where(EndUser.company_id == t.company_id).exists()
    listed = api.get(f"/v1/companies/{t.company_id}/quarantine", auth=t.owner).json["items"]
    assert len(listed) == 1 and listed[0]["events"] == 2 and "failed 2 times" in listed[0]["reason"]
    assert redis_client.xlen("adt:ev:dead") == 1

    replay = api.post(f"/v1/companies/{t.company_id}/quarantine/replay", auth=t.owner)
    assert replay.status_code == 202 and replay.json == {"entries": 1, "events": 2}
    drain(fast, redis_client)
    assert stored(settings, t.company_id) == 2
    assert api.get(f"/v1/companies/{t.company_id}/quarantine", auth=t.owner).json["items"] == []
    with database.connection_context():
        assert Quarantine.get().replayed_at is not None
        assert Wallet.select().where(Wallet.company_id == t.company_id).count() == 1
        assert session_events(t.company_id) == 2


def test_rows_name_their_entry_and_take_the_derived_session_ids_in_order():
    rows = b"\n".join(
        [NO_SESSION + b'"message_id":"a"}', b'{"session_id":"own","message_id":"b"}', NO_SESSION + b'"message_id":"c"}']
    )
    completed = [json.loads(row) for row in insert_rows("17-3", rows, b"s-1 s-2")]
    assert completed == [
        {"stream_entry": "17-3", "session_id": "s-1", "message_id": "a"},
        {"stream_entry": "17-3", "session_id": "own", "message_id": "b"},
        {"stream_entry": "17-3", "session_id": "s-2", "message_id": "c"},
    ]
    assert insert_rows("17-3", b"", b"") == []


@given(st.binary())
def test_a_packed_field_unpacks_to_its_bytes_and_an_unpacked_one_reads_as_it_is(data):
    assert unpack(pack(data)) == data
    if data[:1] != b"\xc1":
        assert unpack(data) == data


def stored_columns(settings, company_id: str) -> list[dict]:
    """A company's stored events, without the columns that differ between two sends of the same events."""
    result = clickhouse_client(settings.clickhouse_url).query(
        "SELECT * FROM events WHERE company_id = toUUID(%(c)s) ORDER BY message_id", parameters={"c": company_id}
    )
    rows = [dict(zip(result.column_names, row, strict=False)) for row in result.result_rows]
    for row in rows:
        assert row.pop("stream_entry") and row.pop("company_id") and row.pop("received_at")
        assert row.pop("session_id")
        row.pop("request_id")
        if row["sent_at"]:  # then the event time is corrected for the clock skew: relative to received_at
            row.pop("event_time")
    return rows


def sent_twice_taking_out_the_second(api, settings, redis_client, events, first, second) -> tuple[str, dict]:
    """Posts `events` for the tenants `first` and `second`, then takes the second's entry out of its
    stream, for the test to put back altered: (the stream, the entry's fields)."""
    for t in (first, second):
        assert api.post("/v1/events", auth=t.write_key, json=events).json["accepted"] == len(events)
    stream = stream_key(shard_for(second.company_id, settings.stream_shards))
    ((entry_id, fields),) = [
        (entry_id, fields)
        for entry_id, fields in redis_client.xrange(stream)
        if fields[b"c"].decode() == second.company_id
    ]
    redis_client.xdel(stream, entry_id)
    return stream, fields


def test_an_entry_written_before_compression_is_stored_as_a_compressed_one(api, settings, redis_client):
    events = mixed_events(10, dt.datetime.now(dt.UTC))
    compressed, plain = tenant(api), tenant(api)
    stream, fields = sent_twice_taking_out_the_second(api, settings, redis_client, events, compressed, plain)
    assert unpack(fields[b"e"]) != fields[b"e"] and unpack(fields[b"j"]) != fields[b"j"]
    redis_client.xadd(stream, {**fields, b"e": unpack(fields[b"e"]), b"j": unpack(fields[b"j"])})
    drain(settings, redis_client)
    rows = stored_columns(settings, compressed.company_id)
    assert len(rows) == len(events) and rows == stored_columns(settings, plain.company_id)
    counts = {
        company: {kind: len(rows) for kind, rows in entity_snapshot(company).items()}
        for company in (compressed.company_id, plain.company_id)
    }
    assert counts[plain.company_id] == counts[compressed.company_id] and all(counts[plain.company_id].values())


def test_an_entry_without_its_rows_is_stored_as_one_with_them(api, settings, redis_client):
    """Entries replayed from quarantine carry only their events ("e"): the pump builds their rows,
    and every column comes out as for an entry written by ingest (whose rows leave derived session
    ids for the pump to fill in)."""
    # A day before the clock ingest reads: inside INGEST_MAX_AGE_DAYS whenever the test runs; whole
    # seconds, as ClickHouse's DateTime stores them.
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(microsecond=0)
    events = mixed_events(12, start) + [
        {
            "type": "transaction",
            "user_id": "u",
            "tx_hash": "0x" + "a" * 64,
            "chain_id": "1",
            "status": "confirmed",
            "value": "1500000000000000000",
            "token": "ETH",
            "message_id": "tx",
            "timestamp": start.isoformat(),
            "sent_at": (start + dt.timedelta(seconds=10)).isoformat(),
            "properties": {"nested": {"quote": 'it\'s "x"', "list": [1, 2.5, None]}},
        }
    ]
    with_rows, without_rows = tenant(api), tenant(api)
    stream, fields = sent_twice_taking_out_the_second(api, settings, redis_client, events, with_rows, without_rows)
    assert fields[b"j"] and fields[b"s"]  # some events came without a session id
    redis_client.xadd(stream, entry_fields(fields[b"c"], "replay", fields[b"e"], fields[b"s"]))
    drain(settings, redis_client)

    rows = stored_columns(settings, with_rows.company_id)
    assert len(rows) == len(events) and rows == stored_columns(settings, without_rows.company_id)
    transaction = next(row for row in rows if row["message_id"] == "tx")
    assert (transaction["tx_value"], transaction["tx_value_num"]) == ("1500000000000000000", 1.5e18)
    assert json.loads(transaction["properties"]) == events[-1]["properties"]
    assert transaction["sent_at"] == start.replace(tzinfo=None) + dt.timedelta(seconds=10)
    payment = next(row for row in rows if row["type"] == "payment")
    assert (str(payment["amount"]), payment["traits"], payment["context"], payment["is_bot"]) == (
        "5.250000000",
        "{}",
        "{}",
        0,
    )
    stored_sessions = (
        clickhouse_client(settings.clickhouse_url)
        .query(
            "SELECT message_id, session_id FROM events WHERE company_id = toUUID(%(c)s)",
            parameters={"c": without_rows.company_id},
        )
        .result_rows
    )
    assert dict(stored_sessions) == {event.message_id: event.session_id for event in decode_entry(fields)}


def test_an_entry_whose_rows_do_not_match_its_message_ids_is_quarantined(api, settings, redis_client):
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0, persist_max_failures=2)
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(4, dt.datetime.now(dt.UTC)))
    stream = stream_key(shard_for(t.company_id, settings.stream_shards))
    ((entry_id, fields),) = redis_client.xrange(stream)
    redis_client.xdel(stream, entry_id)
    redis_client.xadd(stream, {**fields, b"j": pack(unpack(fields[b"j"]).rsplit(b"\n", 1)[0])})
    for _ in range(3):
        drain(fast, redis_client)
    assert stored(settings, t.company_id) == 0
    with database.connection_context():
        assert "3 rows for 4 message ids" in Quarantine.get().reason


@pytest.mark.parametrize("payload", [b"\x92 not msgpack", pack(b"\x92 not msgpack"), b"\xc1 not lz4"])
def test_an_undecodable_entry_goes_straight_to_quarantine(settings, redis_client, api, payload):
    t = tenant(api)
    redis_client.xadd(stream_key(0), {"c": t.company_id, "r": "x", "e": payload})
    drain(settings, redis_client)
    with database.connection_context():
        row = Quarantine.get()
    assert "undecodable" in row.reason and str(row.company_id) == t.company_id


def test_message_ids_with_quotes_are_looked_up_safely(api, settings, redis_client):
    t = tenant(api)
    tricky = "it's \\'); DROP TABLE events; --"
    event = {"type": "track", "name": "x", "user_id": "u", "message_id": tricky}
    api.post("/v1/events", auth=t.write_key, json=event)
    drain(settings, redis_client)
    api.post("/v1/events", auth=t.write_key, json=event)
    drain(settings, redis_client)
    rows = (
        clickhouse_client(settings.clickhouse_url)
        .query("SELECT message_id FROM events WHERE company_id = toUUID(%(c)s)", parameters={"c": t.company_id})
        .result_rows
    )
    assert rows == [(tricky,)]


def test_trimming_keeps_what_any_group_still_needs(api, settings, redis_client):
    t = tenant(api)
    for i in range(5):
        api.post("/v1/events", auth=t.write_key, json={"type": "track", "name": f"e{i}", "user_id": "u"})
    from models.redis_streams import shard_for

    stream = stream_key(shard_for(t.company_id, settings.stream_shards))
    redis_client.xgroup_create(stream, "lagging", id="0", mkstream=True)
    drain(settings, redis_client)
    trim_all(settings, redis_client)
    assert redis_client.xlen(stream) == 5  # "lagging" has read nothing
    redis_client.xreadgroup("lagging", "c", {stream: ">"}, count=3)
    trim_all(settings, redis_client)
    assert redis_client.xlen(stream) == 5  # three read but not acknowledged
    for entry_id, _ in redis_client.xrange(stream, count=3):
        redis_client.xack(stream, "lagging", entry_id)
    trim_all(settings, redis_client)
    assert redis_client.xlen(stream) == 2


def test_reading_events_back_newest_first_with_filters_and_cursor(api, settings, redis_client):
    t = tenant(api)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(30, start))
    other = tenant(api)
    api.post("/v1/events", auth=other.write_key, json=mixed_events(5, start))
    drain(settings, redis_client)

    seen, cursor = [], None
    while True:
        page = api.get(
            f"/v1/companies/{t.company_id}/events",
            auth=t.read_key,
            params={"limit": 7, **({"cursor": cursor} if cursor else {})},
        ).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["message_id"] for e in seen] == [f"m{i}" for i in reversed(range(30))]
    payments = api.get(f"/v1/companies/{t.company_id}/events", auth=t.owner, params={"type": "payment"}).json["items"]
    assert len(payments) == 7 and payments[0]["amount"] == "5.25"
    wallet = api.get(
        f"/v1/companies/{t.company_id}/events", auth=t.owner, params={"wallet": "0x" + "0" * 39 + "1"}
    ).json["items"]
    assert {e["type"] for e in wallet} == {"wallet_connect"} and [e["message_id"] for e in wallet] == ["m22", "m10"]
    window = api.get(
        f"/v1/companies/{t.company_id}/events",
        auth=t.owner,
        params={
            "since": (start + dt.timedelta(seconds=10)).isoformat(),
            "until": (start + dt.timedelta(seconds=20)).isoformat(),
        },
    )
    assert len(window.json["items"]) == 10
    user = api.get(f"/v1/companies/{t.company_id}/events", auth=t.owner, params={"user": "anon3"}).json["items"]
    assert user and all("anon3" in (e["anonymous_id"], e["user_id"]) for e in user)
    assert api.get(f"/v1/companies/{t.company_id}/events", auth=t.owner, params={"limit": 1001}).status_code == 400
    assert (
        api.get(f"/v1/companies/{t.company_id}/events", auth=t.owner, params={"since": "yesterday"}).status_code == 400
    )
    assert api.get(f"/v1/companies/{t.company_id}/events", auth=other.read_key).status_code == 404


class ClickHouseDown:
    """A ClickHouse client whose server does not answer (a stub: the outage itself is in bench/chaos.py)."""

    def query(self, *args, **kwargs):
        raise ch_errors.OperationalError("connection refused")

    raw_insert = query


def test_a_long_outage_redelivers_entries_without_quarantining_them(api, settings, redis_client):
    """Many claims of the same pending entries while ClickHouse is down count no failure: once it is
    back, every event is stored and nothing is quarantined (delivery counts used to quarantine them)."""
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0, persist_max_failures=2)
    t = tenant(api)
    for batch in range(3):
        answer = api.post(
            "/v1/events",
            auth=t.write_key,
            json=[
                {"type": "track", "name": f"during the outage {batch}", "user_id": "u", "message_id": f"o{batch}-{i}"}
                for i in range(10)
            ],
        )
        assert answer.status_code == 200
    for _ in range(6):
        drain(fast, redis_client, ClickHouseDown())
    pending = sum(
        redis_client.xpending(stream_key(shard), PERSIST_GROUP)["pending"] for shard in range(settings.stream_shards)
    )
    assert pending >= 1  # held, not dropped, not quarantined
    drain(fast, redis_client)
    assert stored(settings, t.company_id) == 30
    with database.connection_context():
        assert Quarantine.select().count() == 0


def test_an_insert_cut_short_before_its_event_ids_is_not_repeated_on_redelivery(api, settings, redis_client):
    """ClickHouse killed mid-insert can leave rows in `events` that `event_ids` (filled by a
    materialised view, not atomically) never got; the redelivered entry must find them in `events`."""
    t = tenant(api)
    answer = api.post(
        "/v1/events",
        auth=t.write_key,
        json=[{"type": "track", "name": "cut short", "user_id": "u", "message_id": f"cut-{i}"} for i in range(20)],
    )
    assert answer.status_code == 200
    clickhouse = clickhouse_client(settings.clickhouse_url)
    shard = next(s for s in range(settings.stream_shards) if redis_client.xlen(stream_key(s)))
    pump = EventsPump(settings, redis_client, lambda: clickhouse, shard)
    pump.ensure_group()
    pump.store(pump.read_batch(0.1))  # stored, then the pump dies before acknowledging
    clickhouse.command("TRUNCATE TABLE event_ids")  # the view's half of the insert never happened
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0)
    drain(fast, redis_client, clickhouse)
    assert stored(settings, t.company_id) == 20
    assert redis_client.xpending(stream_key(shard), PERSIST_GROUP)["pending"] == 0
    # the redelivery recorded the ids, so a later resend in a new entry is recognised too
    api.post(
        "/v1/events",
        auth=t.write_key,
        json=[{"type": "track", "name": "cut short", "user_id": "u", "message_id": f"cut-{i}"} for i in range(20)],
    )
    drain(settings, redis_client, clickhouse)
    assert stored(settings, t.company_id) == 20
    assert [len(decode_entry(fields)) for _, fields in redis_client.xrange(entities_stream_key(shard))] == [20]


def test_an_entry_finished_by_one_pump_is_not_handed_over_again_by_another_that_claimed_it(api, settings, redis_client):
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(8, dt.datetime.now(dt.UTC)))
    shard = shard_for(t.company_id, settings.stream_shards)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    fast = dataclasses.replace(settings, persist_claim_idle_seconds=0)
    first, second = (
        EventsPump(fast, redis_client, lambda: clickhouse, shard),
        EventsPump(fast, redis_client, lambda: clickhouse, shard),
    )
    first.ensure_group()
    held = first.read_batch(0.1)
    claimed = second.claim_stale()  # the first looked dead: the second holds the same entries
    assert [entry.id for entry in claimed] == [entry.id for entry in held]
    assert first.persist(held, time.monotonic() + 5)
    assert second.persist(claimed, time.monotonic() + 5)
    assert stored(settings, t.company_id) == 8
    assert len(redis_client.xrange(entities_stream_key(shard))) == 1


def test_an_entry_handed_over_twice_changes_no_entity_and_is_reported(api, settings, redis_client):
    t = tenant(api)
    api.post("/v1/events", auth=t.write_key, json=mixed_events(8, dt.datetime.now(dt.UTC)))
    drain(settings, redis_client)
    before, reported = entity_snapshot(t.company_id), REPEATED_HAND_OVERS._value.get()
    stream = entities_stream_key(shard_for(t.company_id, settings.stream_shards))
    ((_, fields),) = redis_client.xrange(stream)
    redis_client.xadd(stream, fields)
    drain(settings, redis_client)
    assert entity_snapshot(t.company_id) == before
    assert REPEATED_HAND_OVERS._value.get() == reported + 1


def test_a_pump_started_while_clickhouse_is_down_waits_for_it_and_its_run_goes_on(api, settings, redis_client):
    """The pump's actor only connects to ClickHouse when it stores, inside the store's retries: it
    ends its run normally (and its actor queues the next run) instead of failing on the way in."""
    t = tenant(api)
    assert api.post("/v1/events", auth=t.write_key, json=mixed_events(6, dt.datetime.now(dt.UTC))).status_code == 200
    shard = shard_for(t.company_id, settings.stream_shards)
    short = dataclasses.replace(settings, persist_pump_seconds=1)
    unreachable = PerThread(f"http://default:@127.0.0.1:{free_port()}/adtivity", timeout=1)
    lease, queued = redis_keys.pump_lease("persist", shard), redis_keys.pump_queued("persist", shard)
    redis_client.set(queued, 1)
    assert run_pump(short, redis_client, EventsPump(short, redis_client, unreachable.get, shard), lease, queued)
    assert not redis_client.exists(queued) and stored(settings, t.company_id) == 0
    assert redis_client.xpending(stream_key(shard), PERSIST_GROUP)["pending"] == 1  # read, held for a later run
    drain(dataclasses.replace(settings, persist_claim_idle_seconds=0), redis_client)
    assert stored(settings, t.company_id) == 6


def test_a_pump_ends_after_the_batch_it_holds_when_its_worker_begins_to_stop(api, settings, redis_client):
    """STOPPING (set as the worker process begins to shut down): the run stores and acknowledges what
    it read, then ends, long before its time is up, so a restart does not wait for every pump's run."""
    t = tenant(api)
    send_track(api, t, "m0")
    clickhouse = clickhouse_client(settings.clickhouse_url)

    class StopsItsWorker(EventsPump):
        def store(self, entries) -> None:
            super().store(entries)
            STOPPING.set()

    pump = StopsItsWorker(settings, redis_client, lambda: clickhouse, shard_for(t.company_id, settings.stream_shards))
    running = threading.Thread(target=run_pumps, args=([pump], redis_client, 120), daemon=True)
    try:
        running.start()
        running.join(30)
        assert not running.is_alive()
    finally:
        STOPPING.clear()
    assert stored(settings, t.company_id) == 1
    assert redis_client.xpending(pump.stream, PERSIST_GROUP)["pending"] == 0


def test_a_queued_pump_run_clears_its_mark_even_when_another_pump_holds_the_lease(settings, redis_client):
    lease, queued = redis_keys.pump_lease("persist", 0), redis_keys.pump_queued("persist", 0)
    Lease(redis_client, lease, ttl_seconds=30).acquire()
    redis_client.set(queued, 1)
    assert not run_pump(settings, redis_client, EventsPump(settings, redis_client, lambda: None, 0), lease, queued)
    assert not redis_client.exists(queued)


class RecordedJobs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []

    def enqueue(self, actor: str, *args) -> None:
        self.sent.append((actor, args))


def test_a_shard_left_beyond_stream_shards_is_pumped_until_empty(api, settings, redis_client):
    """After STREAM_SHARDS is lowered, entries still waiting in a higher shard are found when the
    scheduler starts; it keeps that shard's pumps running until both have acknowledged everything,
    and then a pump of that shard queues no successor."""
    t = tenant(api)
    assert api.post("/v1/events", auth=t.write_key, json=mixed_events(8, dt.datetime.now(dt.UTC))).status_code == 200
    home = shard_for(t.company_id, settings.stream_shards)
    [(entry_id, fields)] = redis_client.xrange(stream_key(home))
    beyond = settings.stream_shards + 1
    redis_client.xadd(stream_key(beyond), fields)
    redis_client.xdel(stream_key(home), entry_id)
    assert stranded_shards(redis_client, settings.stream_shards) == [beyond]
    assert stranded_shards(redis_client, beyond + 1) == []

    leadership = Leadership(redis_client, lease_seconds=5)
    jobs = RecordedJobs()
    ensure_pumps = build_scheduler(settings, jobs, redis_client, leadership).get_job("persist-pumps").func
    leadership.check()
    ensure_pumps()
    assert {(actor, args) for actor, args in jobs.sent if args == (beyond,)} == {
        (PERSIST_SHARD, (beyond,)),
        (ENTITIES_SHARD, (beyond,)),
    }

    short = dataclasses.replace(settings, persist_pump_seconds=0.1)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    persist = (
        EventsPump(short, redis_client, lambda: clickhouse, beyond),
        redis_keys.pump_lease("persist", beyond),
        redis_keys.pump_queued("persist", beyond),
    )
    entities = (
        EntitiesPump(short, redis_client, beyond),
        redis_keys.pump_lease("entities", beyond),
        redis_keys.pump_queued("entities", beyond),
    )
    assert run_pump(short, redis_client, *persist)  # the entities stream still waits: go on
    assert stored(settings, t.company_id) == 8
    assert not run_pump(short, redis_client, *entities)  # drained
    assert not run_pump(short, redis_client, *persist)
    assert EndUser.select().where(EndUser.company_id == t.company_id).exists()
    assert stranded_shards(redis_client, settings.stream_shards) == []

    redis_client.delete(
        *(redis_keys.pump_queued(kind, shard) for kind in ("persist", "entities") for shard in range(beyond + 1))
    )
    jobs.sent.clear()
    ensure_pumps()
    assert sorted(args[0] for _, args in jobs.sent) == sorted([*range(settings.stream_shards)] * 2)
