"""Every principal against every company endpoint: roles, keys, other tenants, no credentials.

Allowed callers get a 2xx; a member whose role is too low gets 403; a key of the wrong kind 403;
anyone from another tenant 404 (never 403: the company's existence is not revealed); no credentials,
the owner's own token once expired or logged out, and a revoked key of the company: 401.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass

import jwt
import pytest

from accounts.companies import create_company
from accounts.keys import create_key, revoke_key
from accounts.security import issue_access_token
from accounts.sessions import Accounts
from models.accounts import Company, Membership, User
from tests.helpers import PASSWORD, Api, Session

RANKS = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
_names = itertools.count()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    min_role: str
    read_key: bool = False
    body: object = None


ENDPOINTS = [
    Endpoint("GET", "/v1/companies/{company}", "viewer", read_key=True),
    Endpoint("PATCH", "/v1/companies/{company}", "admin", body={"name": "renamed {n}"}),
    Endpoint("DELETE", "/v1/companies/{company}", "owner"),
    Endpoint("GET", "/v1/companies/{company}/members", "viewer"),
    Endpoint("PATCH", "/v1/companies/{company}/members/{target}", "admin", body={"role": "viewer"}),
    Endpoint("DELETE", "/v1/companies/{company}/members/{target}", "admin"),
    Endpoint("GET", "/v1/companies/{company}/invites", "admin"),
    Endpoint(
        "POST", "/v1/companies/{company}/invites", "admin", body={"email": "new{n}@example.com", "role": "member"}
    ),
    Endpoint("POST", "/v1/companies/{company}/transfer", "owner", body={"user_id": "{target}"}),
    Endpoint("GET", "/v1/companies/{company}/keys", "member"),
    Endpoint("POST", "/v1/companies/{company}/keys", "admin", body={"kind": "read", "label": "x"}),
    Endpoint("POST", "/v1/companies/{company}/keys/{key}/rotate", "admin", body={}),
    Endpoint("DELETE", "/v1/companies/{company}/keys/{key}", "admin"),
    Endpoint("POST", "/v1/companies/{company}/test-events", "member"),
    Endpoint("GET", "/v1/companies/{company}/events", "viewer", read_key=True),
    Endpoint("GET", "/v1/companies/{company}/realtime", "viewer", read_key=True),
    *(
        Endpoint("GET", f"/v1/companies/{{company}}/analytics/{name}", "viewer", read_key=True)
        for name in (
            "overview",
            "timeseries",
            "breakdown?dimension=type",
            "regions",
            "active-users",
            "sessions",
            "web3",
            "payments",
        )
    ),
    *(
        Endpoint("GET", f"/v1/companies/{{company}}/drilldowns/{name}", "viewer", read_key=True)
        for name in ("funnel?steps=a,b", "retention", "wallets/0xabc", "contracts/0xabc", "users/someone/timeline")
    ),
    Endpoint("POST", "/v1/companies/{company}/users/someone/export", "admin"),
    Endpoint("DELETE", "/v1/companies/{company}/users/someone", "admin"),
    Endpoint("GET", "/v1/companies/{company}/transactions", "viewer", read_key=True),
    Endpoint("GET", "/v1/companies/{company}/quarantine", "admin"),
    Endpoint("POST", "/v1/companies/{company}/quarantine/replay", "admin"),
]
PRINCIPALS = [
    "viewer",
    "member",
    "admin",
    "owner",
    "outsider",
    "read_key",
    "write_key",
    "foreign_key",
    "anonymous",
    "expired_token",
    "ended_session",
    "revoked_key",
]
REFUSED = ("anonymous", "expired_token", "ended_session", "revoked_key")


def expired_token_of(session, settings) -> str:
    """The session's own token, signed with the real secret, but issued a day ago."""
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    return issue_access_token(
        settings,
        user_id=uuid.UUID(claims["sub"]),
        session_id=uuid.UUID(claims["sid"]),
        now=dt.datetime.utcnow() - dt.timedelta(days=1),
    )


def new_user(accounts: Accounts) -> tuple[User, Session]:
    """A registered user, logged in: made through the domain functions the API calls (the API's own
    flows have their own tests), so the 400-odd cases here each arrange a tenant quickly."""
    email = f"matrix{next(_names)}@example.com"
    user = accounts.register(email, PASSWORD, ip="test")
    tokens = accounts.login(email, PASSWORD, ip="test")
    return user, Session(email, str(user.id), tokens.access_token, tokens.refresh_token)


def joined(accounts: Accounts, company: Company, role: str) -> Session:
    user, session = new_user(accounts)
    Membership.create(company=company, user=user, role=role)
    return session


def ended_session(accounts: Accounts, email: str) -> str:
    tokens = accounts.login(email, PASSWORD, ip="test")
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    accounts.logout(uuid.UUID(claims["sid"]), ip="test")
    return tokens.access_token


@pytest.fixture
def tenant(api: Api, settings) -> dict:
    accounts = Accounts(settings)
    owner_user, owner = new_user(accounts)
    company = create_company(owner_user, f"Matrix {next(_names)}", ip="test")
    outsider_user, outsider = new_user(accounts)
    foreign_company = create_company(outsider_user, f"Matrix {next(_names)}", ip="test")
    revoked_string, revoked = create_key(company, "read", "x", owner_user)
    revoke_key(company, str(revoked.id), owner_user, ip="test")
    return {
        "company": str(company.id),
        "owner": owner,
        "admin": joined(accounts, company, "admin"),
        "member": joined(accounts, company, "member"),
        "viewer": joined(accounts, company, "viewer"),
        "target": joined(accounts, company, "member").user_id,
        "key": str(create_key(company, "read", "x", owner_user)[1].id),
        "outsider": outsider,
        "read_key": create_key(company, "read", "x", owner_user)[0],
        "write_key": create_key(company, "write", "x", owner_user)[0],
        "foreign_key": create_key(foreign_company, "read", "x", outsider_user)[0],
        "anonymous": None,
        "expired_token": expired_token_of(owner, settings),
        "ended_session": ended_session(accounts, owner.email),
        "revoked_key": revoked_string,
    }


def expected_status(endpoint: Endpoint, principal: str) -> int | None:
    """None means "allowed": any 2xx."""
    if principal in REFUSED:
        return 401
    if principal in ("outsider", "foreign_key"):
        return 404
    if principal == "read_key":
        return None if endpoint.read_key else 403
    if principal == "write_key":
        return 403
    return None if RANKS[principal] >= RANKS[endpoint.min_role] else 403


def fill(value, tenant: dict):
    if isinstance(value, dict):
        return {k: fill(v, tenant) for k, v in value.items()}
    if isinstance(value, str):
        return value.format(company=tenant["company"], target=tenant["target"], key=tenant["key"], n=next(_names))
    return value


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_role_matrix(api, tenant, endpoint, principal):
    answer = api.request(
        endpoint.method, fill(endpoint.path, tenant), auth=tenant[principal], json=fill(endpoint.body, tenant)
    )
    expected = expected_status(endpoint, principal)
    if expected is None:
        assert 200 <= answer.status_code < 300, answer.text
    else:
        assert answer.status_code == expected, answer.text
        assert set(answer.json["error"]) == {"code", "message", "details"}


WITH_SUB_IDS = [e for e in ENDPOINTS if "{target}" in e.path or "{key}" in e.path or "{target}" in str(e.body)]


@pytest.mark.parametrize("endpoint", WITH_SUB_IDS, ids=lambda e: f"{e.method} {e.path}")
def test_ids_of_another_tenant_answer_404(api, tenant, endpoint):
    """The caller is owner of their own company but names the other tenant's member or key."""
    outsider = tenant["outsider"]
    own_company = api.get("/v1/me", auth=outsider).json["companies"][0]["id"]
    path = endpoint.path.format(company=own_company, target=tenant["target"], key=tenant["key"])
    answer = api.request(endpoint.method, path, auth=outsider, json=fill(endpoint.body, tenant))
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_or_malformed_company_ids_answer_404(api, bad_id):
    assert api.get(f"/v1/companies/{bad_id}", auth=api.user()).status_code == 404
