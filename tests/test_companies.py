"""Companies: create, list with cursor pagination, read, rename, delete and the purge job."""

from __future__ import annotations

import uuid

from models.accounts import ApiKey, AuditLog, Company, Membership
from models.chain import ChainTransaction
from models.clickhouse import clickhouse_client
from models.db import utcnow
from models.rollups import RollupState
from models.tracking import EndUser, Wallet
from tests.pipeline_helpers import run_queued_jobs
from tests.processes import wait_for


def test_creator_becomes_owner(api):
    owner = api.user()
    created = api.post("/v1/companies", auth=owner, json={"name": "  Acme  "})
    assert created.status_code == 201
    assert created.json["name"] == "Acme" and created.json["role"] == "owner"
    read = api.get(f"/v1/companies/{created.json['id']}", auth=owner)
    assert read.json == created.json


def test_names_are_unique_per_owner_not_globally(api):
    alice, bob = api.user(), api.user()
    api.company(alice, "Acme")
    assert api.post("/v1/companies", auth=alice, json={"name": "acme"}).status_code == 409
    assert api.company(bob, "Acme")
    renamed = api.company(alice, "Other")
    assert api.patch(f"/v1/companies/{renamed}", auth=alice, json={"name": "ACME"}).status_code == 409


def test_list_pages_with_a_cursor(api):
    owner = api.user()
    made = [api.company(owner, f"Company {i}") for i in range(5)]
    seen, cursor = [], None
    while True:
        page = api.get("/v1/companies", auth=owner, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert api.get("/v1/companies", auth=owner, params={"cursor": "garbage!"}).status_code == 400
    assert api.get("/v1/companies", auth=owner, params={"limit": 0}).status_code == 400
    assert api.get("/v1/companies", auth=owner, params={"limit": 201}).status_code == 400


def test_rename_needs_admin(api):
    owner = api.user()
    company_id = api.company(owner, "Before")
    member = api.member(owner, company_id, "member")
    assert api.patch(f"/v1/companies/{company_id}", auth=member, json={"name": "Nope"}).status_code == 403
    renamed = api.patch(f"/v1/companies/{company_id}", auth=owner, json={"name": "After"})
    assert renamed.status_code == 200 and renamed.json["name"] == "After"


def test_delete_stops_keys_at_once_and_purges_in_the_background(api, settings):
    owner = api.user()
    company_id = api.company(owner)
    key = api.key(owner, company_id, "read")["key"]
    assert api.get(f"/v1/companies/{company_id}", auth=key).status_code == 200
    clickhouse = clickhouse_client(settings.clickhouse_url)
    clickhouse.insert(
        "events",
        [[uuid.UUID(company_id), "m1", "track", "x", "anon"]],
        column_names=["company_id", "message_id", "type", "name", "anonymous_id"],
        column_type_names=["UUID", "String", "String", "String", "String"],
    )
    assert RollupState.select().where(RollupState.company_id == company_id).exists()  # made with the company
    moment = utcnow()
    EndUser.create(company_id=company_id, user_id="u1", first_seen=moment, last_seen=moment, traits={})
    Wallet.create(
        company_id=company_id, address="0xabc", chains=["1"], user_id="u1", first_seen=moment, last_seen=moment
    )
    ChainTransaction.create(
        company_id=company_id,
        chain_id="1",
        tx_hash="0x1",
        reported_at=moment,
        last_reported_at=moment,
        next_check_at=moment,
    )

    assert api.delete(f"/v1/companies/{company_id}", auth=owner).status_code == 204
    assert api.get(f"/v1/companies/{company_id}", auth=key).status_code == 401
    assert api.get(f"/v1/companies/{company_id}", auth=owner).status_code == 404
    assert api.get("/v1/companies", auth=owner).json["items"] == []
    assert Company.get_by_id(uuid.UUID(company_id)).deleted_at is not None  # still there until the job runs

    run_queued_jobs(settings)
    assert not Company.select().where(Company.id == uuid.UUID(company_id)).exists()
    assert not ApiKey.select().where(ApiKey.company == uuid.UUID(company_id)).exists()
    assert not Membership.select().where(Membership.company == uuid.UUID(company_id)).exists()
    wait_for_no_events(clickhouse, company_id)
    wait_for_no_events(clickhouse, company_id, table="identity_first_seen")
    assert not RollupState.select().where(RollupState.company_id == company_id).exists()
    for model in (EndUser, Wallet, ChainTransaction):  # its people and what they did
        assert not model.select().where(model.company_id == company_id).exists(), model
    assert AuditLog.select().where(AuditLog.action == "company.deleted").count() == 1


def test_purge_refuses_a_live_company(api, settings):
    from workers.companies import purge_company_data

    owner = api.user()
    company_id = api.company(owner)
    assert purge_company_data(settings, uuid.UUID(company_id)) is False
    assert Company.select().where(Company.id == uuid.UUID(company_id)).exists()


def wait_for_no_events(clickhouse, company_id: str, seconds: float = 10.0, table: str = "events") -> None:
    """ALTER TABLE ... DELETE is asynchronous: wait for the mutation to finish."""

    def count() -> int:
        return clickhouse.query(
            f"SELECT count() FROM {table} WHERE company_id = %(c)s", parameters={"c": company_id}
        ).result_rows[0][0]

    wait_for(lambda: count() == 0, seconds, f"{table} to hold none of the company's rows")


def test_retention_is_a_company_setting_admins_change(api):
    owner = api.user()
    company_id = api.company(owner)
    assert api.get(f"/v1/companies/{company_id}", auth=owner).json["retention_months"] == 13
    member = api.member(owner, company_id, "member")
    assert api.patch(f"/v1/companies/{company_id}", auth=member, json={"retention_months": 6}).status_code == 403
    changed = api.patch(f"/v1/companies/{company_id}", auth=owner, json={"retention_months": 6})
    assert changed.status_code == 200 and changed.json["retention_months"] == 6 and changed.json["name"]
    for bad in ({"retention_months": 0}, {"retention_months": 121}, {}):
        assert api.patch(f"/v1/companies/{company_id}", auth=owner, json=bad).status_code == 422
    assert AuditLog.select().where(AuditLog.action == "company.retention_changed").count() == 1
