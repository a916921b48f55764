"""Company members over HTTP: list, change role, remove or leave, invite by email, accept, transfer
ownership. The rules are in accounts/members.py."""

from __future__ import annotations

import falcon

from accounts import members
from adtivity.settings import Settings
from models.accounts import Membership, OneTimeToken, User
from web import schemas
from web.pagination import paginate
from web.principals import client_ip, company_access, require_user
from web.resources.companies import company_out
from web.schemas import InviteOut, MemberOut, Page


def member_out(membership: Membership) -> MemberOut:
    return MemberOut(
        user_id=membership.user.id, email=membership.user.email, role=membership.role, joined_at=membership.created_at
    )


def invite_out(invite: OneTimeToken) -> InviteOut:
    return InviteOut(
        id=invite.id,
        email=invite.email,
        role=invite.role,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        accepted=invite.used_at is not None,
    )


class Members:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer")
        query = Membership.select(Membership, User).join(User).where(Membership.company == access.company.id)
        rows, cursor = paginate(
            req, self.settings, query, Membership.created_at, Membership.id, key=lambda m: (m.created_at, m.id)
        )
        resp.media = Page(items=[member_out(m) for m in rows], next_cursor=cursor)


class MemberItem:
    PATCH_SCHEMA = schemas.MemberUpdate

    def on_patch(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        resp.media = member_out(
            members.change_role(access.company, access.user, user_id, req.context.body.role, ip=client_ip(req))
        )

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer")
        members.remove_member(access.company, access.user, access.role, user_id, ip=client_ip(req))
        resp.status = falcon.HTTP_204


class Invites:
    POST_SCHEMA = schemas.InviteCreate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        query = OneTimeToken.select().where(OneTimeToken.purpose == "invite", OneTimeToken.company == access.company.id)
        rows, cursor = paginate(
            req, self.settings, query, OneTimeToken.created_at, OneTimeToken.id, key=lambda t: (t.created_at, t.id)
        )
        resp.media = Page(items=[invite_out(t) for t in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        body: schemas.InviteCreate = req.context.body
        invite = members.invite(self.settings, access.company, access.user, body.email, body.role, ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = invite_out(invite)


class InviteAccept:
    def on_post(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        company, role = members.accept_invite(require_user(req).user, token, ip=client_ip(req))
        resp.media = company_out(company, role)


class OwnershipTransfer:
    POST_SCHEMA = schemas.OwnershipTransfer

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="owner")
        resp.media = member_out(
            members.transfer_ownership(access.company, access.user, str(req.context.body.user_id), ip=client_ip(req))
        )
