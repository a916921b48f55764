"""/v1/companies: create, list, read, rename (and set the data retention of) and delete tenants.

The rules are in accounts/companies.py. Deleting marks the company deleted at once, announces it to
every web worker (its keys stop working) and enqueues `purge_company`, which removes its data in the
background.
"""

from __future__ import annotations

import falcon
import redis

from accounts.companies import create_company, mark_deleted, update_company
from adtivity.jobs import PURGE_COMPANY, Jobs
from adtivity.settings import Settings
from models.accounts import Company, Membership
from web import schemas
from web.errors import ApiError
from web.keycache import announce_revoked
from web.pagination import paginate
from web.principals import client_ip, company_access, require_user
from web.schemas import CompanyOut, Page


def company_out(company: Company, role: str | None) -> CompanyOut:
    return CompanyOut(
        id=company.id,
        name=company.name,
        created_at=company.created_at,
        retention_months=company.retention_months,
        role=role,
    )


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
        rows, cursor = paginate(
            req,
            self.settings,
            query,
            Company.created_at,
            Company.id,
            key=lambda m: (m.company.created_at, m.company.id),
        )
        resp.media = Page(items=[company_out(m.company, m.role) for m in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        company = create_company(require_user(req).user, req.context.body.name, ip=client_ip(req))
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
        update_company(company, access.user, name=body.name, retention_months=body.retention_months, ip=client_ip(req))
        resp.media = company_out(company, access.role)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="owner")
        mark_deleted(access.company, access.user, ip=client_ip(req))
        announce_revoked(self.redis, company_id=access.company.id)
        self.jobs.enqueue(PURGE_COMPANY, str(access.company.id))
        resp.status = falcon.HTTP_204
