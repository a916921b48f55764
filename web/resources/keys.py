"""/v1/companies/{id}/keys: create, list (never secrets), rotate with a grace period, revoke.

The key string (`adt_w_<public id>_<secret>`) is returned once, at creation or rotation (the rules
are in accounts/keys.py). Rotating and revoking announce the key to every web worker's cache.
"""

from __future__ import annotations

import falcon
import redis

from accounts.audit import audit
from accounts.keys import create_key, revoke_key, rotate_key
from adtivity.settings import Settings
from models.accounts import ApiKey
from web import schemas
from web.keycache import announce_revoked
from web.pagination import paginate
from web.principals import client_ip, company_access
from web.schemas import KeyCreated, KeyOut, Page


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        kind=key.kind,
        public_id=key.public_id,
        label=key.label,
        created_at=key.created_at,
        created_by=key.created_by_id,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


class Keys:
    POST_SCHEMA = schemas.KeyCreate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="member")
        query = ApiKey.select().where(ApiKey.company == access.company.id)
        if not req.get_param_as_bool("include_revoked", default=False):
            query = query.where(ApiKey.revoked_at.is_null())
        rows, cursor = paginate(
            req, self.settings, query, ApiKey.created_at, ApiKey.id, key=lambda k: (k.created_at, k.id)
        )
        resp.media = Page(items=[key_out(k) for k in rows], next_cursor=cursor)

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        body: schemas.KeyCreate = req.context.body
        key_string, key = create_key(access.company, body.kind, body.label, access.user)
        audit(
            "key.created",
            actor_id=access.user.id,
            company_id=access.company.id,
            target=key.public_id,
            ip=client_ip(req),
        )
        resp.status = falcon.HTTP_201
        resp.media = KeyCreated(key=key_string, details=key_out(key))


class KeyRotate:
    POST_SCHEMA = schemas.KeyRotate

    def __init__(self, settings: Settings, redis_client: redis.Redis) -> None:
        self.settings = settings
        self.redis = redis_client

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str, key_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        grace = req.context.body.grace_seconds
        key_string, key, old = rotate_key(
            access.company,
            key_id,
            access.user,
            ip=client_ip(req),
            grace_seconds=self.settings.key_rotation_grace_seconds if grace is None else grace,
        )
        announce_revoked(self.redis, public_ids=[old.public_id])
        resp.status = falcon.HTTP_201
        resp.media = KeyCreated(key=key_string, details=key_out(key))


class KeyItem:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, key_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        key = revoke_key(access.company, key_id, access.user, ip=client_ip(req))
        announce_revoked(self.redis, public_ids=[key.public_id])
        resp.status = falcon.HTTP_204
