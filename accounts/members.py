"""Company members: change role, remove or leave, invite by email, accept, transfer ownership.

Roles rank viewer < member < admin < owner. Admins manage members below owner; only the owner
transfers ownership (and becomes admin). An invite's token goes to the outbox only, and accepting
binds it to the invited email: a user logged in under another email cannot use it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import peewee

from accounts.audit import audit, send_mail
from accounts.companies import name_taken
from accounts.security import digest, new_token, normalise_email
from accounts.sessions import consume_token
from adtivity.errors import Conflict, NotAllowed, NotFound
from adtivity.settings import Settings
from models.accounts import Company, Membership, OneTimeToken, User
from models.db import database, utcnow


def find_member(company: Company, user_id: str) -> Membership:
    try:
        wanted = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("not_found", "member not found") from None
    membership: Membership | None = (
        Membership.select(Membership, User)
        .join(User)
        .where(Membership.company == company.id, Membership.user == wanted)
        .first()
    )
    if membership is None:
        raise NotFound("not_found", "member not found")
    return membership


def change_role(company: Company, actor: User, user_id: str, role: str, *, ip: str) -> Membership:
    membership = find_member(company, user_id)
    if membership.role == "owner":
        raise NotAllowed("forbidden", "the owner's role changes only by transferring ownership")
    membership.role = role
    membership.save()
    audit("member.role_changed", actor_id=actor.id, company_id=company.id, target=f"{membership.user.id}:{role}", ip=ip)
    return membership


def remove_member(company: Company, actor: User, actor_role: str, user_id: str, *, ip: str) -> None:
    """Anyone may leave; removing another member needs the admin role or higher; the owner cannot leave."""
    membership = find_member(company, user_id)
    leaving = membership.user.id == actor.id
    if not leaving and actor_role not in ("admin", "owner"):
        raise NotAllowed("forbidden", "this needs the admin role or higher; yours is " + actor_role)
    if membership.role == "owner":
        raise Conflict("owner_cannot_leave", "transfer ownership before the owner leaves")
    membership.delete_instance()
    audit(
        "member.left" if leaving else "member.removed",
        actor_id=actor.id,
        company_id=company.id,
        target=str(membership.user.id),
        ip=ip,
    )


def invite(settings: Settings, company: Company, actor: User, email: str, role: str, *, ip: str) -> OneTimeToken:
    """Mails an invite link to `email` (through the outbox) and answers the invite's row."""
    email = normalise_email(email)
    already = Membership.select().join(User).where(Membership.company == company.id, User.email == email).exists()
    if already:
        raise Conflict("already_member", "this email already belongs to a member")
    token = new_token()
    row = OneTimeToken.create(
        purpose="invite",
        token_digest=digest(token),
        email=email,
        company=company,
        role=role,
        created_by=actor,
        expires_at=utcnow() + dt.timedelta(seconds=settings.invite_token_seconds),
    )
    send_mail(
        email,
        f"You are invited to {company.name} on Adtivity",
        f"{actor.email} invited you as {role}. Log in or register with this email, then open:\n"
        f"{settings.public_base_url}/app/invite?token={token}\n",
    )
    audit("member.invited", actor_id=actor.id, company_id=company.id, target=f"{email}:{role}", ip=ip)
    return row


def accept_invite(user: User, token: str, *, ip: str) -> tuple[Company, str]:
    """Makes `user` a member with the invited role; answers the company and the role."""
    row = OneTimeToken.get_or_none(OneTimeToken.purpose == "invite", OneTimeToken.token_digest == digest(token))
    if row is not None and row.email != user.email:
        raise NotAllowed("forbidden", "this invite was sent to another email address")
    try:
        with database.atomic():
            row = consume_token("invite", token, now=utcnow())
            company = Company.get_or_none(Company.id == row.company_id, Company.deleted_at.is_null())
            if company is None:
                raise NotFound("not_found", "company not found")
            Membership.create(company=company, user=user, role=row.role)
    except peewee.IntegrityError:
        raise Conflict("already_member", "you are already a member of this company") from None
    role = str(row.role)  # an invite always has one
    audit("member.joined", actor_id=user.id, company_id=company.id, target=role, ip=ip)
    return company, role


def transfer_ownership(company: Company, owner: User, user_id: str, *, ip: str) -> Membership:
    """`user_id` becomes the owner and `owner` an admin; answers the new owner's membership."""
    target = find_member(company, user_id)
    if target.user.id == owner.id:
        raise Conflict("already_owner", "you already own this company")
    try:
        with database.atomic():
            Membership.update(role="admin").where(
                Membership.company == company.id, Membership.user == owner.id
            ).execute()
            Membership.update(role="owner").where(Membership.id == target.id).execute()
            Company.update(owner=target.user.id).where(Company.id == company.id).execute()
    except peewee.IntegrityError:
        raise name_taken() from None
    audit("company.ownership_transferred", actor_id=owner.id, company_id=company.id, target=str(target.user.id), ip=ip)
    return find_member(company, str(target.user.id))
