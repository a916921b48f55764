"""/v1/auth/* and /v1/me: registration, login, token refresh, logout, password change and reset."""

from __future__ import annotations

import falcon

from accounts.sessions import Accounts, TokenPair
from adtivity.jobs import Jobs
from adtivity.ratelimit import Limit, RateLimiter
from adtivity.settings import Settings
from models.accounts import Company, Membership
from web import schemas
from web.errors import too_many_requests
from web.principals import client_ip, require_user
from web.resources.companies import company_out
from web.schemas import Accepted, MeOut, TokenPairOut, UserOut


def tokens_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


def user_out(user) -> UserOut:
    return UserOut(id=user.id, email=user.email, is_platform_admin=user.is_platform_admin, created_at=user.created_at)


class PerIpLimit:
    """The per-IP limit on the auth endpoints that check a password or mail a link (register, login,
    password change, reset)."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.limit = Limit.per_minute(settings.login_rate_per_ip_per_minute)

    def check(self, req: falcon.Request) -> None:
        decision = self.limiter.take("auth-ip", client_ip(req), self.limit)
        if not decision.allowed:
            raise too_many_requests(decision.retry_after, "too many requests from this address; slow down")


class Register:
    PUBLIC = True
    POST_SCHEMA = schemas.Credentials

    def __init__(self, accounts: Accounts, ip_limit: PerIpLimit) -> None:
        self.accounts = accounts
        self.ip_limit = ip_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ip_limit.check(req)
        body: schemas.Credentials = req.context.body
        user = self.accounts.register(body.email, body.password, ip=client_ip(req))
        resp.status = falcon.HTTP_201
        resp.media = user_out(user)


class Login:
    PUBLIC = True
    POST_SCHEMA = schemas.Credentials

    def __init__(self, accounts: Accounts, ip_limit: PerIpLimit) -> None:
        self.accounts = accounts
        self.ip_limit = ip_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ip_limit.check(req)
        body: schemas.Credentials = req.context.body
        resp.media = tokens_out(self.accounts.login(body.email, body.password, ip=client_ip(req)))


class Refresh:
    PUBLIC = True
    POST_SCHEMA = schemas.RefreshRequest

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = tokens_out(self.accounts.refresh(req.context.body.refresh_token, ip=client_ip(req)))


class Logout:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = require_user(req)
        self.accounts.logout(principal.session_id, ip=client_ip(req))
        resp.status = falcon.HTTP_204


class PasswordChange:
    POST_SCHEMA = schemas.PasswordChange

    def __init__(self, accounts: Accounts, ip_limit: PerIpLimit) -> None:
        self.accounts = accounts
        self.ip_limit = ip_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = require_user(req)
        self.ip_limit.check(req)
        body: schemas.PasswordChange = req.context.body
        self.accounts.change_password(
            principal.user, principal.session_id, body.current_password, body.new_password, ip=client_ip(req)
        )
        resp.status = falcon.HTTP_204


class PasswordReset:
    PUBLIC = True
    POST_SCHEMA = schemas.PasswordResetRequest

    def __init__(self, jobs: Jobs, ip_limit: PerIpLimit) -> None:
        self.jobs = jobs
        self.ip_limit = ip_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ip_limit.check(req)
        Accounts.request_password_reset(req.context.body.email, ip=client_ip(req), jobs=self.jobs)
        resp.status = falcon.HTTP_202
        resp.media = Accepted("accepted", "if an account exists for this email, a reset link has been sent to it")


class PasswordResetConfirm:
    PUBLIC = True
    POST_SCHEMA = schemas.PasswordResetConfirm

    def __init__(self, accounts: Accounts, ip_limit: PerIpLimit) -> None:
        self.accounts = accounts
        self.ip_limit = ip_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ip_limit.check(req)
        body: schemas.PasswordResetConfirm = req.context.body
        self.accounts.confirm_password_reset(body.token, body.new_password, ip=client_ip(req))
        resp.status = falcon.HTTP_204


class Me:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require_user(req).user
        rows = (
            Membership.select(Membership.role, Company)
            .join(Company)
            .where(Membership.user == user.id, Company.deleted_at.is_null())
            .order_by(Company.created_at, Company.id)
        )
        companies = [company_out(m.company, m.role) for m in rows]
        resp.media = MeOut(user=user_out(user), companies=companies)
