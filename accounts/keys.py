"""API keys: create (the key string is shown once; only the SHA-256 digest of its secret is stored),
find, rotate with a grace period, revoke. Callers announce rotated and revoked keys to every web
worker's cache (web/keycache.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from accounts.audit import audit
from accounts.security import digest, new_key
from adtivity.errors import NotFound
from models.accounts import ApiKey, Company, User
from models.db import database, utcnow


def create_key(company: Company, kind: str, label: str, created_by: User) -> tuple[str, ApiKey]:
    """The new key's string (`adt_w_<public id>_<secret>`, never stored) and its row."""
    key_string, parts = new_key(kind)
    key = ApiKey.create(
        company=company,
        kind=kind,
        public_id=parts.public_id,
        secret_digest=digest(parts.secret),
        label=label,
        created_by=created_by,
    )
    return key_string, key


def find_key(company: Company, key_id: str) -> ApiKey:
    try:
        wanted = uuid.UUID(key_id)
    except ValueError:
        raise NotFound("not_found", "key not found") from None
    key = ApiKey.get_or_none(ApiKey.id == wanted, ApiKey.company == company.id)
    if key is None:
        raise NotFound("not_found", "key not found")
    return key


def rotate_key(
    company: Company, key_id: str, actor: User, *, grace_seconds: int, ip: str
) -> tuple[str, ApiKey, ApiKey]:
    """A new key like the old one; the old one keeps working for `grace_seconds` (or less, if it
    expires sooner). Answers the new key's string, the new row and the old row."""
    old = find_key(company, key_id)
    if old.revoked_at is not None:
        raise NotFound("not_found", "key not found")
    with database.atomic():
        key_string, new = create_key(company, old.kind, old.label, actor)
        ends = utcnow() + dt.timedelta(seconds=grace_seconds)
        if old.expires_at is None or old.expires_at > ends:
            old.expires_at = ends
            old.save()
    audit("key.rotated", actor_id=actor.id, company_id=company.id, target=f"{old.public_id}->{new.public_id}", ip=ip)
    return key_string, new, old


def revoke_key(company: Company, key_id: str, actor: User, *, ip: str) -> ApiKey:
    key = find_key(company, key_id)
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.id == key.id, ApiKey.revoked_at.is_null()).execute()
    audit("key.revoked", actor_id=actor.id, company_id=company.id, target=key.public_id, ip=ip)
    return key
