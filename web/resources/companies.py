"""/v1/companies: create, list, read, rename (and set the data retention of) and delete tenants.

Names are unique per owner. Deleting marks the company deleted at once (every key stops working on
every web worker) and enqueues `purge_company`, which removes its data in the background.
"""
from __future__ import annotations

import falcon
import peewee
import redis

from adtivity.jobs import PURGE_COMPANY, Jobs
from adtivity.settings import Settings
from models.db import database, utcnow
from models.entities import Company, Membership
from web import schemas
from web.accounts import audit
from web.errors import ApiError
from web.keycache import announce_revoked
from web.pagination import paginate
from web.principals import client_ip, company_access, require_user
from web.schemas import CompanyOut, Page


def company_out(company: Company, role: str | None) -> CompanyOut:
    return CompanyOut(id=company.id, name=company.name, created_at=company.created_at,
                      retention_months=company.retention_months, role=role)


def name_taken() -> ApiError:
    return ApiError(409, "name_taken", "the owner already has a company with this name")


class Companies:
    POST_SCHEMA = schemas.CompanyCreate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require_user(req).user
        query = (
            Membership.select(Membership.role, Company)
            .join(Company)
            .where(Membership.user == user.id, Company.deleted_at.is_null())
        )
        rows, cursor = paginate(req, self.settings, query, Company.created_at, Company.id,
                                key=lambda m: (m.company.created_at, m.company.id))
        resp.media = Page(items=[company_out(m.company, m.role) for m in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require_user(req).user
        name = req.context.body.name.strip()
        try:
            with database.atomic():
                company = Company.create(name=name, owner=user)
                Membership.create(company=company, user=user, role="owner")
        except peewee.IntegrityError:
            raise name_taken() from None
        audit("company.created", actor_id=user.id, company_id=company.id, ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = company_out(company, "owner")


class CompanyItem:
    PATCH_SCHEMA = schemas.CompanyUpdate

    def __init__(self, jobs: Jobs, redis_client: redis.Redis) -> None:
        self.jobs = jobs
        self.redis = redis_client

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer", read_key=True)
        resp.media = company_out(access.company, access.role)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        company, body = access.company, req.context.body
        if body.name is None and body.retention_months is None:
            raise ApiError(422, "invalid_body", "give name, retention_months or both")
        if body.name is not None:
            company.name = body.name.strip()
        if body.retention_months is not None:
            company.retention_months = body.retention_months
        try:
            with database.atomic():
                company.save()
        except peewee.IntegrityError:
            raise name_taken() from None
        if body.name is not None:
            audit("company.renamed", actor_id=access.user.id, company_id=company.id, ip=client_ip(req))
        if body.retention_months is not None:
            audit("company.retention_changed", actor_id=access.user.id, company_id=company.id,
                  target=f"{body.retention_months} months", ip=client_ip(req))
        resp.media = company_out(company, access.role)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="owner")
        Company.update(deleted_at=utcnow()).where(Company.id == access.company.id).execute()
        announce_revoked(self.redis, company_id=access.company.id)
        self.jobs.enqueue(PURGE_COMPANY, str(access.company.id))
        audit("company.deleted", actor_id=access.user.id, company_id=access.company.id, ip=client_ip(req))
        resp.status = falcon.HTTP_204
