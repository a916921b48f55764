"""Companies (tenants): create with an owner, rename, set the data retention, mark deleted. Names are
unique per owner. The data of a deleted company is purged in the background (workers/companies.py)."""

from __future__ import annotations

import peewee

from accounts.audit import audit
from adtivity.errors import Conflict
from models.accounts import Company, Membership, User
from models.db import database, utcnow
from models.rollups import RollupState


def name_taken() -> Conflict:
    return Conflict("name_taken", "the owner already has a company with this name")


def create_company(owner: User, name: str, *, ip: str) -> Company:
    """A company owned by `owner`, who becomes its first member."""
    try:
        with database.atomic():
            company = Company.create(name=name.strip(), owner=owner)
            Membership.create(company=company, user=owner, role="owner")
            # Nothing was accepted for it before now, so its (empty) rollups are complete until now.
            RollupState.create(company_id=company.id, complete_until=company.created_at, computed_at=company.created_at)
    except peewee.IntegrityError:
        raise name_taken() from None
    audit("company.created", actor_id=owner.id, company_id=company.id, ip=ip)
    return company


def update_company(
    company: Company, actor: User, *, name: str | None, retention_months: int | None, ip: str
) -> Company:
    if name is not None:
        company.name = name.strip()
    if retention_months is not None:
        company.retention_months = retention_months
    try:
        with database.atomic():
            company.save()
    except peewee.IntegrityError:
        raise name_taken() from None
    if name is not None:
        audit("company.renamed", actor_id=actor.id, company_id=company.id, ip=ip)
    if retention_months is not None:
        audit(
            "company.retention_changed",
            actor_id=actor.id,
            company_id=company.id,
            target=f"{retention_months} months",
            ip=ip,
        )
    return company


def mark_deleted(company: Company, actor: User, *, ip: str) -> None:
    """The company stops at once; the caller announces its keys revoked and enqueues the purge."""
    Company.update(deleted_at=utcnow()).where(Company.id == company.id).execute()
    audit("company.deleted", actor_id=actor.id, company_id=company.id, ip=ip)
