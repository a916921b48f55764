"""Who is calling: credentials are read once per request by `Authenticate`, and responders ask for
what they need with `require_user`, `company_access` and friends.

A principal is either a logged-in user (a JWT access token whose session is still live) or an API
key (`Authorization: Bearer adt_...` or `X-API-Key`). Tenancy comes only from the principal: a
company id in a path is checked against the caller's membership, and a company the caller cannot
see answers 404, exactly like one that does not exist.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import falcon

from adtivity.settings import Settings

from models.entities import AuthSession, Company, Membership, User, role_rank
from web.errors import forbidden, not_found, unauthorized
from web.keycache import KeyCache, KeyRecord
from web.security import parse_key, read_access_token


@dataclass(frozen=True)
class UserPrincipal:
    user: User
    session_id: uuid.UUID


@dataclass(frozen=True)
class KeyPrincipal:
    key: KeyRecord


class Authenticate:
    """Middleware: sets req.context.principal (None when no credentials were presented)."""

    def __init__(self, settings: Settings, keys: KeyCache) -> None:
        self.settings = settings
        self.keys = keys

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        credential = req.get_header("X-API-Key")
        if credential is None:
            scheme, _, value = (req.auth or "").partition(" ")
            if scheme.lower() == "basic" and value:
                credential = basic_username(value)  # Segment's SDKs send the write key as the username
            elif scheme.lower() == "bearer" and value:
                credential = value.strip()
            if not credential:
                return
        if credential.startswith("adt_"):
            req.context.principal = self._key_principal(credential)
        else:
            req.context.principal = self._user_principal(credential)

    def _key_principal(self, credential: str) -> KeyPrincipal:
        presented = parse_key(credential)
        record = self.keys.authenticate(presented) if presented else None
        if record is None:
            raise unauthorized("the API key is unknown, revoked or expired")
        return KeyPrincipal(record)

    def _user_principal(self, credential: str) -> UserPrincipal:
        claims = read_access_token(self.settings, credential)
        if claims is None:
            raise unauthorized("the access token is invalid or expired")
        session = (
            AuthSession.select(AuthSession, User)
            .join(User)
            .where(AuthSession.id == claims.session_id, AuthSession.user == claims.user_id)
            .first()
        )
        if session is None or session.revoked_at is not None:
            raise unauthorized("the session has ended; log in again")
        return UserPrincipal(session.user, session.id)


def basic_username(encoded: str) -> str | None:
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0] or None
    except (ValueError, UnicodeDecodeError):
        raise unauthorized("the Basic credentials are malformed") from None


def require_user(req: falcon.Request) -> UserPrincipal:
    principal = req.context.principal
    if principal is None:
        raise unauthorized()
    if not isinstance(principal, UserPrincipal):
        raise forbidden("this endpoint needs a user login, not an API key")
    return principal


def require_platform_admin(req: falcon.Request) -> UserPrincipal:
    principal = require_user(req)
    if not principal.user.is_platform_admin:
        raise forbidden("platform administrators only")
    return principal


@dataclass(frozen=True)
class CompanyAccess:
    company: Company
    role: str | None  # None for a read key
    user: User | None


def company_access(req: falcon.Request, company_id: str, *, min_role: str, read_key: bool = False) -> CompanyAccess:
    """The company, if the caller may act on it with at least `min_role`.

    Another tenant's company, a deleted one and a malformed id all answer 404. A member whose role is
    too low gets 403. A read key of the company is accepted where `read_key` is true.
    """
    principal = req.context.principal
    if principal is None:
        raise unauthorized()
    try:
        wanted = uuid.UUID(company_id)
    except ValueError:
        raise not_found("company") from None
    if isinstance(principal, KeyPrincipal):
        if principal.key.company_id != wanted:
            raise not_found("company")
        if not read_key or principal.key.kind != "read":
            raise forbidden(f"a {principal.key.kind} key cannot do this")
        company = Company.get_or_none(Company.id == wanted, Company.deleted_at.is_null())
        if company is None:
            raise not_found("company")
        return CompanyAccess(company, None, None)
    row = (
        Membership.select(Membership.role, Company)
        .join(Company)
        .where(Membership.user == principal.user.id, Company.id == wanted, Company.deleted_at.is_null())
        .first()
    )
    if row is None:
        raise not_found("company")
    if role_rank(row.role) < role_rank(min_role):
        raise forbidden(f"this needs the {min_role} role or higher; yours is {row.role}")
    return CompanyAccess(row.company, row.role, principal.user)


def client_ip(req: falcon.Request) -> str:
    """The peer address. X-Forwarded-For is not trusted: a client could forge it to dodge per-IP limits."""
    return req.remote_addr or ""



def company_id_access(req: falcon.Request, company_id: str, *, min_role: str, read_key: bool = False) -> uuid.UUID:
    """`company_access` for resources that need only the company's id. A read key of the company is
    answered from the key cache, which holds keys of live companies only (a deleted company's keys are
    evicted everywhere at once), so the hot read paths skip a query."""
    principal = req.context.principal
    if isinstance(principal, KeyPrincipal) and read_key and principal.key.kind == "read":
        try:
            wanted = uuid.UUID(company_id)
        except ValueError:
            raise not_found("company") from None
        if principal.key.company_id != wanted:
            raise not_found("company")
        return wanted
    return company_access(req, company_id, min_role=min_role, read_key=read_key).company.id
