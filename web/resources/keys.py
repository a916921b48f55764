"""/v1/companies/{id}/keys: create, list (never secrets), rotate with a grace period, revoke.

The key string (`adt_w_<public id>_<secret>`) is returned once, at creation or rotation; only the
SHA-256 digest of the secret is stored. Revoking announces the key to every web worker's cache.
"""
from __future__ import annotations

import datetime as dt
import uuid

import falcon
import redis

from adtivity.settings import Settings
from models.db import database, utcnow
from models.entities import ApiKey, Company, User
from web import schemas
from web.accounts import audit
from web.errors import not_found
from web.keycache import announce_revoked
from web.pagination import paginate
from web.principals import client_ip, company_access
from web.schemas import KeyCreated, KeyOut, Page
from web.security import digest, new_key


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(id=key.id, kind=key.kind, public_id=key.public_id, label=key.label, created_at=key.created_at,
                  created_by=key.created_by_id, last_used_at=key.last_used_at, expires_at=key.expires_at,
                  revoked_at=key.revoked_at)


def create_key(company: Company, kind: str, label: str, created_by: User) -> KeyCreated:
    key_string, parts = new_key(kind)
    key = ApiKey.create(company=company, kind=kind, public_id=parts.public_id, secret_digest=digest(parts.secret),
                        label=label, created_by=created_by)
    return KeyCreated(key=key_string, details=key_out(key))


def find_key(company: Company, key_id: str) -> ApiKey:
    try:
        wanted = uuid.UUID(key_id)
    except ValueError:
        raise not_found("key") from None
    key = ApiKey.get_or_none(ApiKey.id == wanted, ApiKey.company == company.id)
    if key is None:
        raise not_found("key")
    return key


class Keys:
    POST_SCHEMA = schemas.KeyCreate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="member")
        query = ApiKey.select().where(ApiKey.company == access.company.id)
        if not req.get_param_as_bool("include_revoked", default=False):
            query = query.where(ApiKey.revoked_at.is_null())
        rows, cursor = paginate(req, self.settings, query, ApiKey.created_at, ApiKey.id, key=lambda k: (k.created_at, k.id))
        resp.media = Page(items=[key_out(k) for k in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        body: schemas.KeyCreate = req.context.body
        created = create_key(access.company, body.kind, body.label, access.user)
        audit("key.created", actor_id=access.user.id, company_id=access.company.id,
              target=created.details.public_id, ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = created


class KeyRotate:
    POST_SCHEMA = schemas.KeyRotate

    def __init__(self, settings: Settings, redis_client: redis.Redis) -> None:
        self.settings = settings
        self.redis = redis_client

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str, key_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        old = find_key(access.company, key_id)
        if old.revoked_at is not None:
            raise not_found("key")
        grace = req.context.body.grace_seconds
        grace = self.settings.key_rotation_grace_seconds if grace is None else grace
        with database.atomic():
            created = create_key(access.company, old.kind, old.label, access.user)
            ends = utcnow() + dt.timedelta(seconds=grace)
            if old.expires_at is None or old.expires_at > ends:
                old.expires_at = ends
                old.save()
        announce_revoked(self.redis, public_ids=[old.public_id])
        audit("key.rotated", actor_id=access.user.id, company_id=access.company.id,
              target=f"{old.public_id}->{created.details.public_id}", ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = created


class KeyItem:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, key_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        key = find_key(access.company, key_id)
        ApiKey.update(revoked_at=utcnow()).where(ApiKey.id == key.id, ApiKey.revoked_at.is_null()).execute()
        announce_revoked(self.redis, public_ids=[key.public_id])
        audit("key.revoked", actor_id=access.user.id, company_id=access.company.id, target=key.public_id,
              ip=client_ip(req))
        resp.status = falcon.HTTP_204
