"""Company members: list, change role, remove or leave, invite by email, accept, transfer ownership.

Roles rank viewer < member < admin < owner. Admins manage members below owner; only the owner
transfers ownership (and becomes admin). An invite's token goes to the outbox only, and accepting
binds it to the invited email: a user logged in under another email cannot use it.
"""
from __future__ import annotations

import datetime as dt
import uuid

import falcon
import peewee

from adtivity.settings import Settings
from models.db import database, utcnow
from models.entities import Company, Membership, OneTimeToken, User
from web import schemas
from web.accounts import audit, consume_token, send_mail
from web.errors import ApiError, forbidden, not_found
from web.pagination import paginate
from web.principals import client_ip, company_access, require_user
from web.resources.companies import company_out, name_taken
from web.schemas import InviteOut, MemberOut, Page
from web.security import digest, new_token, normalise_email


def member_out(membership: Membership) -> MemberOut:
    return MemberOut(user_id=membership.user.id, email=membership.user.email, role=membership.role,
                     joined_at=membership.created_at)


def find_member(company: Company, user_id: str) -> Membership:
    try:
        wanted = uuid.UUID(user_id)
    except ValueError:
        raise not_found("member") from None
    membership = (
        Membership.select(Membership, User).join(User)
        .where(Membership.company == company.id, Membership.user == wanted).first()
    )
    if membership is None:
        raise not_found("member")
    return membership


class Members:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer")
        query = Membership.select(Membership, User).join(User).where(Membership.company == access.company.id)
        rows, cursor = paginate(req, self.settings, query, Membership.created_at, Membership.id,
                                key=lambda m: (m.created_at, m.id))
        resp.media = Page(items=[member_out(m) for m in rows], next_cursor=cursor)


class MemberItem:
    PATCH_SCHEMA = schemas.MemberUpdate

    def on_patch(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        membership = find_member(access.company, user_id)
        if membership.role == "owner":
            raise forbidden("the owner's role changes only by transferring ownership")
        membership.role = req.context.body.role
        membership.save()
        audit("member.role_changed", actor_id=access.user.id, company_id=access.company.id,
              target=f"{membership.user.id}:{membership.role}", ip=client_ip(req))
        resp.media = member_out(membership)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer")
        membership = find_member(access.company, user_id)
        leaving = membership.user.id == access.user.id
        if not leaving and access.role not in ("admin", "owner"):
            raise forbidden("this needs the admin role or higher; yours is " + access.role)
        if membership.role == "owner":
            raise ApiError(409, "owner_cannot_leave", "transfer ownership before the owner leaves")
        membership.delete_instance()
        audit("member.left" if leaving else "member.removed", actor_id=access.user.id,
              company_id=access.company.id, target=str(membership.user.id), ip=client_ip(req))
        resp.status = falcon.HTTP_204


class Invites:
    POST_SCHEMA = schemas.InviteCreate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        query = OneTimeToken.select().where(OneTimeToken.purpose == "invite", OneTimeToken.company == access.company.id)
        rows, cursor = paginate(req, self.settings, query, OneTimeToken.created_at, OneTimeToken.id,
                                key=lambda t: (t.created_at, t.id))
        resp.media = Page(items=[invite_out(t) for t in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        body: schemas.InviteCreate = req.context.body
        email = normalise_email(body.email)
        already = (
            Membership.select().join(User)
            .where(Membership.company == access.company.id, User.email == email).exists()
        )
        if already:
            raise ApiError(409, "already_member", "this email already belongs to a member")
        token = new_token()
        invite = OneTimeToken.create(
            purpose="invite", token_digest=digest(token), email=email, company=access.company, role=body.role,
            created_by=access.user, expires_at=utcnow() + dt.timedelta(seconds=self.settings.invite_token_seconds),
        )
        send_mail(email, f"You are invited to {access.company.name} on Adtivity",
                  f"{access.user.email} invited you as {body.role}. Log in or register with this email, then open:\n"
                  f"{self.settings.public_base_url}/app/invite?token={token}\n")
        audit("member.invited", actor_id=access.user.id, company_id=access.company.id,
              target=f"{email}:{body.role}", ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = invite_out(invite)


def invite_out(invite: OneTimeToken) -> InviteOut:
    return InviteOut(id=invite.id, email=invite.email, role=invite.role, created_at=invite.created_at,
                     expires_at=invite.expires_at, accepted=invite.used_at is not None)


class InviteAccept:
    def on_post(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        user = require_user(req).user
        invite = OneTimeToken.get_or_none(OneTimeToken.purpose == "invite", OneTimeToken.token_digest == digest(token))
        if invite is not None and invite.email != user.email:
            raise forbidden("this invite was sent to another email address")
        try:
            with database.atomic():
                invite = consume_token("invite", token, now=utcnow())
                company = Company.get_or_none(Company.id == invite.company_id, Company.deleted_at.is_null())
                if company is None:
                    raise not_found("company")
                Membership.create(company=company, user=user, role=invite.role)
        except peewee.IntegrityError:
            raise ApiError(409, "already_member", "you are already a member of this company") from None
        audit("member.joined", actor_id=user.id, company_id=company.id, target=invite.role, ip=client_ip(req))
        resp.media = company_out(company, invite.role)


class OwnershipTransfer:
    POST_SCHEMA = schemas.OwnershipTransfer

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="owner")
        target = find_member(access.company, str(req.context.body.user_id))
        if target.user.id == access.user.id:
            raise ApiError(409, "already_owner", "you already own this company")
        try:
            with database.atomic():
                Membership.update(role="admin").where(Membership.company == access.company.id,
                                                      Membership.user == access.user.id).execute()
                Membership.update(role="owner").where(Membership.id == target.id).execute()
                Company.update(owner=target.user.id).where(Company.id == access.company.id).execute()
        except peewee.IntegrityError:
            raise name_taken() from None
        audit("company.ownership_transferred", actor_id=access.user.id, company_id=access.company.id,
              target=str(target.user.id), ip=client_ip(req))
        resp.media = member_out(find_member(access.company, str(target.user.id)))
