"""Privacy requests end to end with a real Dramatiq worker: an export holds every event and entity row
of the user (and of the anonymous ids linked to them); a deletion leaves no trace in raw events,
first sightings, entities or rollups, and the rollups still equal ClickHouse."""

from __future__ import annotations

import datetime as dt
import gzip
import json

from chain.verify import export_versions
from models.chain import ChainTransaction
from models.clickhouse import clickhouse_client
from models.db import database
from models.rollups import DAY, RollupCount
from models.tracking import EndUser, Identity, Session
from rollups.compute import rollup_company_now
from tests.ingest_helpers import CHROME, tenant
from tests.pipeline_helpers import drain, run_queued_jobs

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ALICES_TRANSACTION = "0x" + "a1" * 32


def events_of(prefix: str, n: int, **identity) -> list[dict]:
    return [
        {
            "type": "page" if i % 2 else "track",
            "name": "Clicked",
            "message_id": f"{prefix}-{i}",
            "timestamp": (NOW - dt.timedelta(hours=i)).isoformat(),
            "context": {"userAgent": CHROME},
            **identity,
        }
        for i in range(n)
    ]


def setup(api, settings, redis_client):
    t = tenant(api)
    batch = (
        events_of("anon", 3, anonymous_id="anon-alice")
        + [
            {
                "type": "identify",
                "user_id": "alice",
                "anonymous_id": "anon-alice",
                "message_id": "link",
                "timestamp": NOW.isoformat(),
                "context": {"userAgent": CHROME},
            }
        ]
        + events_of("alice", 5, user_id="alice")
        + [
            {
                "type": "transaction",
                "user_id": "alice",
                "chain_id": "1",
                "tx_hash": ALICES_TRANSACTION,
                "message_id": "alice-tx",
                "timestamp": NOW.isoformat(),
                "context": {"userAgent": CHROME},
            }
        ]
        + events_of("bob", 4, user_id="bob")
    )
    assert api.post("/v1/events", auth=t.write_key, json=batch).status_code == 200
    drain(settings, redis_client)
    # What the chain said of her transaction, in ClickHouse too (chain 1 has no endpoint here: as exported).
    export_versions(settings, clickhouse_client(settings.clickhouse_url), "1", limit=10)
    rollup_company_now(settings, redis_client, clickhouse_client(settings.clickhouse_url), t.company_id)
    return t


def count(settings, company_id: str, where: str) -> int:
    return (
        clickhouse_client(settings.clickhouse_url)
        .query(
            f"SELECT count() FROM events WHERE company_id = toUUID(%(c)s) AND ({where})", parameters={"c": company_id}
        )
        .result_rows[0][0]
    )


def test_an_export_holds_the_users_events_and_entities(api, settings, redis_client):
    t = setup(api, settings, redis_client)
    started = api.post(f"/v1/companies/{t.company_id}/users/alice/export", auth=t.owner)
    assert started.status_code == 202 and started.json["status"] == "queued"
    assert started.headers["location"] == started.json["status_url"]
    assert api.get(started.json["status_url"] + "/download", auth=t.owner).status_code == 409
    run_queued_jobs(settings)
    status = api.get(started.json["status_url"], auth=t.owner).json
    assert status["status"] == "done" and status["events"] == 10
    download = api.get(status["download_url"], auth=t.owner)
    lines = [json.loads(line) for line in gzip.decompress(download.content).splitlines()]
    records = [line["record"] for line in lines]
    assert records.count("event") == 10 and "end_user" in records and "identity" in records
    assert [line["tx_hash"] for line in lines if line["record"] == "transaction_verification"] == [ALICES_TRANSACTION]
    assert {line["message_id"] for line in lines if line["record"] == "event"} == {
        *(f"anon-{i}" for i in range(3)),
        "link",
        *(f"alice-{i}" for i in range(5)),
        "alice-tx",
    }


def test_a_deleted_user_leaves_no_trace(api, settings, redis_client):
    t = setup(api, settings, redis_client)
    clickhouse = clickhouse_client(settings.clickhouse_url)
    started = api.delete(f"/v1/companies/{t.company_id}/users/alice", auth=t.owner)
    assert started.status_code == 202
    run_queued_jobs(settings)
    assert api.get(started.json["status_url"], auth=t.owner).json["status"] == "done"
    assert count(settings, t.company_id, "user_id = 'alice' OR anonymous_id = 'anon-alice'") == 0  # the job waited
    assert count(settings, t.company_id, "1") == 4
    verified = "SELECT count() FROM tx_verifications WHERE company_id = toUUID(%(c)s)"
    assert clickhouse.query(verified, parameters={"c": t.company_id}).result_rows[0][0] == 0
    assert (
        clickhouse.query(
            "SELECT count() FROM identity_first_seen WHERE company_id = toUUID(%(c)s) "
            "AND identity IN ('alice', 'anon-alice')",
            parameters={"c": t.company_id},
        ).result_rows[0][0]
        == 0
    )
    with database.connection_context():
        assert not EndUser.select().where(EndUser.company_id == t.company_id, EndUser.user_id == "alice").exists()
        assert not Identity.select().where(Identity.company_id == t.company_id, Identity.user_id == "alice").exists()
        assert not ChainTransaction.select().where(ChainTransaction.company_id == t.company_id).exists()
        assert (
            not Session.select()
            .where(Session.company_id == t.company_id, Session.identity.in_(["alice", "anon-alice"]))
            .exists()
        )
        daily_events = sum(
            r.amount
            for r in RollupCount.select().where(
                RollupCount.company_id == t.company_id,
                RollupCount.grain == DAY,
                RollupCount.metric == "events",
                RollupCount.dimension == "",
            )
        )
    assert daily_events == 4  # the rollups were rebuilt from what remains: bob's events
    overview = api.get(f"/v1/companies/{t.company_id}/analytics/overview", auth=t.owner).json["metrics"]
    assert overview["events"]["value"] == 4 and overview["users"]["value"] == 1


def test_only_admins_of_the_company_make_or_read_privacy_requests(api):
    t = tenant(api)
    member = api.member(t.owner, t.company_id, "member")
    assert api.delete(f"/v1/companies/{t.company_id}/users/alice", auth=member).status_code == 403
    assert api.post(f"/v1/companies/{t.company_id}/users/alice/export", auth=t.read_key).status_code == 403
    started = api.post(f"/v1/companies/{t.company_id}/users/alice/export", auth=t.owner)
    other = tenant(api)
    assert (
        api.get(f"/v1/companies/{other.company_id}/privacy-requests/{started.json['id']}", auth=other.owner).status_code
        == 404
    )
    assert api.get(f"/v1/companies/{t.company_id}/privacy-requests/not-an-id", auth=t.owner).status_code == 404
    assert api.post(f"/v1/companies/{t.company_id}/users/{'x' * 513}/export", auth=t.owner).status_code == 400
