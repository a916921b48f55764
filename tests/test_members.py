"""Members: invites through the outbox, accepting, roles, removal, leaving and ownership transfer."""

from __future__ import annotations

from tests.helpers import invite_token_from_outbox


def test_invite_token_reaches_only_the_outbox_and_binds_to_the_email(api):
    owner = api.user()
    company_id = api.company(owner)
    invited, intruder = api.user(), api.user()
    answer = api.post(
        f"/v1/companies/{company_id}/invites", auth=owner, json={"email": invited.email.upper(), "role": "viewer"}
    )
    assert answer.status_code == 201
    token = invite_token_from_outbox(invited.email)
    assert token not in answer.text
    listed = api.get(f"/v1/companies/{company_id}/invites", auth=owner)
    assert token not in listed.text and listed.json["items"][0]["email"] == invited.email

    assert api.post(f"/v1/invites/{token}/accept", auth=intruder).status_code == 403
    accepted = api.post(f"/v1/invites/{token}/accept", auth=invited)
    assert accepted.status_code == 200 and accepted.json["role"] == "viewer"
    assert api.post(f"/v1/invites/{token}/accept", auth=invited).status_code == 400
    assert api.get(f"/v1/companies/{company_id}/invites", auth=owner).json["items"][0]["accepted"] is True
    roles = {m["email"]: m["role"] for m in api.get(f"/v1/companies/{company_id}/members", auth=invited).json["items"]}
    assert roles == {owner.email: "owner", invited.email: "viewer"}


def test_unknown_invite_token_is_refused(api):
    assert api.post("/v1/invites/not-a-token/accept", auth=api.user()).status_code == 400


def test_inviting_a_member_again_is_a_conflict(api):
    owner = api.user()
    company_id = api.company(owner)
    assert api.post(f"/v1/companies/{company_id}/invites", auth=owner, json={"email": owner.email}).status_code == 409


def test_owner_role_cannot_be_invited_or_assigned(api):
    owner = api.user()
    company_id = api.company(owner)
    member = api.member(owner, company_id, "member")
    assert (
        api.post(
            f"/v1/companies/{company_id}/invites", auth=owner, json={"email": "x@example.com", "role": "owner"}
        ).status_code
        == 422
    )
    assert (
        api.patch(
            f"/v1/companies/{company_id}/members/{member.user_id}", auth=owner, json={"role": "owner"}
        ).status_code
        == 422
    )


def test_admin_changes_roles_but_not_the_owners(api):
    owner = api.user()
    company_id = api.company(owner)
    admin = api.member(owner, company_id, "admin")
    member = api.member(owner, company_id, "member")
    changed = api.patch(f"/v1/companies/{company_id}/members/{member.user_id}", auth=admin, json={"role": "viewer"})
    assert changed.status_code == 200 and changed.json["role"] == "viewer"
    assert (
        api.patch(
            f"/v1/companies/{company_id}/members/{owner.user_id}", auth=admin, json={"role": "viewer"}
        ).status_code
        == 403
    )
    # The demoted member lost their rights at once.
    assert api.get(f"/v1/companies/{company_id}/keys", auth=member).status_code == 403


def test_remove_and_leave(api):
    owner = api.user()
    company_id = api.company(owner)
    admin = api.member(owner, company_id, "admin")
    viewer = api.member(owner, company_id, "viewer")
    other = api.member(owner, company_id, "member")
    assert api.delete(f"/v1/companies/{company_id}/members/{other.user_id}", auth=viewer).status_code == 403
    assert api.delete(f"/v1/companies/{company_id}/members/{viewer.user_id}", auth=viewer).status_code == 204  # leaves
    assert api.get(f"/v1/companies/{company_id}", auth=viewer).status_code == 404
    assert api.delete(f"/v1/companies/{company_id}/members/{other.user_id}", auth=admin).status_code == 204
    assert api.delete(f"/v1/companies/{company_id}/members/{owner.user_id}", auth=admin).status_code == 409
    assert api.delete(f"/v1/companies/{company_id}/members/{owner.user_id}", auth=owner).status_code == 409
    assert api.delete(f"/v1/companies/{company_id}/members/{other.user_id}", auth=admin).status_code == 404


def test_transfer_ownership(api):
    owner = api.user()
    company_id = api.company(owner, "Shop")
    admin = api.member(owner, company_id, "admin")
    stranger = api.user()
    assert (
        api.post(f"/v1/companies/{company_id}/transfer", auth=admin, json={"user_id": admin.user_id}).status_code == 403
    )
    assert (
        api.post(f"/v1/companies/{company_id}/transfer", auth=owner, json={"user_id": stranger.user_id}).status_code
        == 404
    )
    moved = api.post(f"/v1/companies/{company_id}/transfer", auth=owner, json={"user_id": admin.user_id})
    assert moved.status_code == 200 and moved.json["role"] == "owner"
    roles = {m["email"]: m["role"] for m in api.get(f"/v1/companies/{company_id}/members", auth=owner).json["items"]}
    assert roles == {owner.email: "admin", admin.email: "owner"}
    assert api.delete(f"/v1/companies/{company_id}", auth=owner).status_code == 403
    # The old owner can now leave; the new owner's names stay unique.
    assert api.delete(f"/v1/companies/{company_id}/members/{owner.user_id}", auth=owner).status_code == 204
    assert api.post("/v1/companies", auth=admin, json={"name": "shop"}).status_code == 409
