"""API keys: shown once, stored as digests, rotation with a grace period, revocation everywhere."""

from __future__ import annotations

import hashlib

from accounts.security import new_key
from models.accounts import ApiKey
from models.db import database
from tests.conftest import make_client
from tests.helpers import Api
from tests.processes import wait_for
from web.keycache import KeyCache


def test_key_string_is_shown_once_and_only_its_digest_is_stored(api):
    owner = api.user()
    company_id = api.company(owner)
    created = api.key(owner, company_id, "write")
    key = created["key"]
    kind, public_id, secret = key.split("_")[1:]
    assert kind == "w" and created["details"]["public_id"] == public_id and len(secret) == 64
    row = ApiKey.get(ApiKey.public_id == public_id)
    assert row.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    listed = api.get(f"/v1/companies/{company_id}/keys", auth=owner)
    assert listed.status_code == 200
    assert secret not in listed.text and row.secret_digest not in listed.text
    assert [k["public_id"] for k in listed.json["items"]] == [public_id]


def test_read_key_reads_its_company_and_nothing_else(api):
    owner = api.user()
    company_id, other_id = api.company(owner), api.company(owner)
    read_key = api.key(owner, company_id, "read")["key"]
    assert api.get(f"/v1/companies/{company_id}", auth=read_key).status_code == 200
    assert api.get(f"/v1/companies/{company_id}", headers={"X-API-Key": read_key}).status_code == 200
    assert api.get(f"/v1/companies/{other_id}", auth=read_key).status_code == 404
    assert api.get(f"/v1/companies/{company_id}/keys", auth=read_key).status_code == 403
    assert api.get("/v1/me", auth=read_key).status_code == 403


def test_write_key_cannot_read_or_manage(api):
    owner = api.user()
    company_id = api.company(owner)
    write_key = api.key(owner, company_id, "write")["key"]
    assert api.get(f"/v1/companies/{company_id}", auth=write_key).status_code == 403
    assert api.post(f"/v1/companies/{company_id}/keys", auth=write_key, json={"kind": "read"}).status_code == 403
    assert api.delete(f"/v1/companies/{company_id}", auth=write_key).status_code == 403


def test_wrong_secret_or_malformed_key_is_refused(api):
    owner = api.user()
    company_id = api.company(owner)
    key = api.key(owner, company_id, "read")["key"]
    tampered = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert api.get(f"/v1/companies/{company_id}", auth=tampered).status_code == 401
    assert api.get(f"/v1/companies/{company_id}", auth="adt_r_short_key").status_code == 401
    as_write = key.replace("adt_r_", "adt_w_")
    assert api.get(f"/v1/companies/{company_id}", auth=as_write).status_code == 401


def test_rotate_keeps_the_old_key_for_the_grace_period(clocked_api, clock):
    api = clocked_api
    owner = api.user()
    company_id = api.company(owner)
    old = api.key(owner, company_id, "read")
    rotated = api.post(
        f"/v1/companies/{company_id}/keys/{old['details']['id']}/rotate", auth=owner, json={"grace_seconds": 2}
    )
    assert rotated.status_code == 201
    new_key = rotated.json["key"]
    assert new_key != old["key"] and rotated.json["details"]["kind"] == "read"
    assert api.get(f"/v1/companies/{company_id}", auth=old["key"]).status_code == 200
    assert api.get(f"/v1/companies/{company_id}", auth=new_key).status_code == 200
    clock.advance(1)
    assert api.get(f"/v1/companies/{company_id}", auth=old["key"]).status_code == 200
    clock.advance(1.5)
    assert api.get(f"/v1/companies/{company_id}", auth=old["key"]).status_code == 401
    assert api.get(f"/v1/companies/{company_id}", auth=new_key).status_code == 200


def test_rotate_with_no_grace_ends_the_old_key_now(api):
    owner = api.user()
    company_id = api.company(owner)
    old = api.key(owner, company_id, "read")
    api.post(f"/v1/companies/{company_id}/keys/{old['details']['id']}/rotate", auth=owner, json={"grace_seconds": 0})
    assert api.get(f"/v1/companies/{company_id}", auth=old["key"]).status_code == 401


def test_revoked_key_is_refused_by_another_app_instance_within_five_seconds(settings):
    first, second = Api(make_client(settings)), Api(make_client(settings))
    owner = first.user()
    company_id = first.company(owner)
    created = first.key(owner, company_id, "read")
    # The second instance has the key cached (a 30 s TTL by default).
    assert second.get(f"/v1/companies/{company_id}", auth=created["key"]).status_code == 200
    assert first.delete(f"/v1/companies/{company_id}/keys/{created['details']['id']}", auth=owner).status_code == 204
    wait_for(
        lambda: second.get(f"/v1/companies/{company_id}", auth=created["key"]).status_code == 401,
        5,
        "the other instance to refuse the revoked key",
    )
    listed = first.get(f"/v1/companies/{company_id}/keys", auth=owner, params={"include_revoked": "true"}).json["items"]
    assert listed[0]["revoked_at"] is not None
    assert first.get(f"/v1/companies/{company_id}/keys", auth=owner).json["items"] == []


def test_key_of_another_company_cannot_be_touched(api):
    alice, mallory = api.user(), api.user()
    alice_company, mallory_company = api.company(alice), api.company(mallory)
    key_id = api.key(alice, alice_company)["details"]["id"]
    assert api.delete(f"/v1/companies/{mallory_company}/keys/{key_id}", auth=mallory).status_code == 404
    assert api.post(f"/v1/companies/{mallory_company}/keys/{key_id}/rotate", auth=mallory, json={}).status_code == 404
    assert ApiKey.get_by_id(key_id).revoked_at is None


def test_last_used_at_is_written_in_the_background(with_settings):
    api = with_settings(key_usage_interval_seconds=1)
    owner = api.user()
    company_id = api.company(owner)
    created = api.key(owner, company_id, "write")
    assert created["details"]["last_used_at"] is None
    api.post("/v1/events", auth=created["key"], json={"type": "track", "name": "x", "user_id": "u"})
    wait_for(lambda: ApiKey.get_by_id(created["details"]["id"]).last_used_at is not None, 5, "the key's last use")
    listed = api.get(f"/v1/companies/{company_id}/keys", auth=owner).json["items"][0]
    assert listed["last_used_at"] is not None


def test_a_closed_key_cache_stops_its_threads(redis_client):
    """Each app's key cache listens for revocations and writes key use in two threads; closing it
    (tests do, after each test) stops both, so none outlives its database."""
    cache = KeyCache(redis_client, ttl=30, usage_interval=0.2)
    with database.connection_context():
        assert cache.authenticate(new_key("write")[1]) is None
    assert cache.running
    cache.close(wait=3)
    assert not cache.running
