"""Who is calling: credentials are read once per request by `Authenticate`, and responders ask for
what they need with `require_user`, `company_access` and friends.

A principal is either a logged-in user (a JWT access token whose session is still live) or an API
key (`Authorization: Bearer adt_...` or `X-API-Key`). Tenancy comes only from the principal: a
company id in a path is checked against the caller's membership, and a company the caller cannot
see answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from dataclasses import dataclass

import falcon

from accounts.security import parse_key, read_access_token
from adtivity.ratelimit import Limit, RateLimiter
from adtivity.settings import Settings
from models.accounts import AuthSession, Company, Membership, User, role_rank
from web.errors import forbidden, not_found, too_many_requests, unauthorized
from web.keycache import KeyCache, KeyRecord


@dataclass(frozen=True)
class UserPrincipal:
    user: User
    session_id: uuid.UUID


@dataclass(frozen=True)
class KeyPrincipal:
    key: KeyRecord


class KeyFailures:
    """Throttles key guessing. Each refused API key charges its client address's bucket in Redis
    (KEY_FAILURES_PER_IP_PER_MINUTE, shared by every worker); once it is empty, this worker answers
    every key from that address 429 without looking it up, until the bucket would have refilled. A
    good key never touches Redis, so ingest pays nothing for this."""

    MAX_BLOCKED = 10_000

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.limit = Limit.per_minute(settings.key_failures_per_ip_per_minute)
        self._blocked: dict[str, float] = {}

    def check(self, address: str) -> None:
        until = self._blocked.get(address)
        if until is None:
            return
        remaining = until - time.monotonic()
        if remaining > 0:
            raise self._refusal(math.ceil(remaining))
        self._blocked.pop(address, None)

    def charge(self, address: str) -> None:
        decision = self.limiter.take("key-failures", address, self.limit)
        if decision.allowed:
            return
        now = time.monotonic()
        if len(self._blocked) >= self.MAX_BLOCKED:
            self._blocked = {a: until for a, until in self._blocked.items() if until > now}
        self._blocked[address] = now + decision.retry_after
        raise self._refusal(decision.retry_after)

    @staticmethod
    def _refusal(retry_after: int):
        return too_many_requests(retry_after, "too many invalid API keys from this address; wait before trying again")


class KeyAuthenticator:
    """An API key string to its principal, for headers and for keys sent in a body (beacons): 401
    for a key that is unknown, revoked or expired, with guessing throttled by `KeyFailures`."""

    def __init__(self, keys: KeyCache, failures: KeyFailures) -> None:
        self.keys = keys
        self.failures = failures

    def principal(self, credential: str, address: str) -> KeyPrincipal:
        self.failures.check(address)
        presented = parse_key(credential)
        record = self.keys.authenticate(presented) if presented else None
        if record is None:
            self.failures.charge(address)
            raise unauthorized("the API key is unknown, revoked or expired")
        return KeyPrincipal(record)


class Authenticate:
    """Middleware: sets req.context.principal (None when no credentials were presented), and refuses
    a caller without credentials with 401 before anything else (body validation included) unless
    the resource says `PUBLIC = True` (health, docs, login and the like; ingest, which also takes a
    write key from the body)."""

    def __init__(self, settings: Settings, key_authenticator: KeyAuthenticator) -> None:
        self.settings = settings
        self.key_authenticator = key_authenticator

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
            req.context.principal = self.key_authenticator.principal(credential, client_ip(req))
        else:
            req.context.principal = self._user_principal(credential)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if (
            req.context.principal is None
            and resource is not None
            and not getattr(resource, "PUBLIC", False)
            and hasattr(resource, f"on_{req.method.lower()}")
        ):  # else Falcon answers 405
            raise unauthorized("credentials are required")

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
