"""Platform users and their sessions: registration, login with lockout, refresh-token rotation, logout,
password change and reset, platform admins. Used by the auth resources, the workers (reset mails) and
the operator CLI.

Every check of an account's password (a login, a password change) is a guess, and an account takes
at most LOGIN_MAX_FAILURES wrong guesses in LOGIN_FAILURE_WINDOW_SECONDS. A guess is counted before
the password is checked, under a lock on the email, so however many arrive at once no more than the
allowed number are ever checked; a right guess is then recorded as a success."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import peewee

from accounts.audit import audit, send_mail
from accounts.passwords import PasswordHasher, password_problem
from accounts.security import digest, issue_access_token, new_token, normalise_email
from adtivity.errors import Busy, Conflict, InvalidInput, NotAllowed, NotAuthenticated, RateLimited, Unprocessable
from adtivity.jobs import SEND_PASSWORD_RESET, Jobs
from adtivity.logs import log_event
from adtivity.settings import Settings
from models.accounts import AuthSession, LoginAttempt, OneTimeToken, RefreshToken, User
from models.db import database, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class Accounts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.passwords = PasswordHasher(
            rounds=settings.bcrypt_rounds,
            concurrency=settings.password_hash_concurrency,
            wait_seconds=settings.password_hash_wait_seconds,
        )

    def check_password_policy(self, password: str) -> None:
        problem = password_problem(password, min_length=self.settings.password_min_length)
        if problem:
            raise Unprocessable("weak_password", problem)

    def register(self, email: str, password: str, *, ip: str) -> User:
        email = normalise_email(email)
        self.check_password_policy(password)
        try:
            with database.atomic():
                user = User.create(email=email, password_hash=self.passwords.hash(password))
        except peewee.IntegrityError:
            raise Conflict("email_taken", "an account with this email already exists") from None
        audit("user.registered", actor_id=user.id, ip=ip)
        return user

    def login(self, email: str, password: str, *, ip: str) -> TokenPair:
        email = normalise_email(email)
        user = User.get_or_none(User.email == email)
        if not self._guess(email, password, user.password_hash if user else None, ip=ip) or user is None:
            raise NotAuthenticated("unauthorized", "the email or password is wrong")
        session = AuthSession.create(user=user)
        audit("user.login", actor_id=user.id, ip=ip)
        return self._issue(user.id, session.id)

    def _take_guess(self, email: str, *, ip: str) -> LoginAttempt:
        """Counts one guess at `email`'s password, as wrong until `_guess` finds it right; RateLimited when
        the window's wrong guesses (those still being checked included) are at the limit. Guesses at
        one email are counted one at a time (a transaction-scoped advisory lock), so concurrent
        guesses cannot all read the same count."""
        now = utcnow()
        window = dt.timedelta(seconds=self.settings.login_failure_window_seconds)
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"password-guess:{email}",))
            failures = list(
                LoginAttempt.select(LoginAttempt.created_at)
                .where(
                    LoginAttempt.email == email,
                    LoginAttempt.succeeded == False,  # noqa: E712
                    LoginAttempt.created_at > now - window,
                )
                .order_by(LoginAttempt.created_at.desc())
                .limit(self.settings.login_max_failures)
            )
            if len(failures) >= self.settings.login_max_failures:
                log_event(log, "login locked", ip=ip)
                raise RateLimited(
                    max(1, int((failures[-1].created_at + window - now).total_seconds()) + 1),
                    "too many wrong passwords for this account; try again later",
                )
            return LoginAttempt.create(email=email, ip=ip, succeeded=False, created_at=now)

    def _guess(self, email: str, password: str, password_hash: str | None, *, ip: str) -> bool:
        """Whether `password` is the account's (`password_hash`; None for an unknown email), counted as
        one guess at `email`. A check refused as Busy was never made, so it is not counted."""
        guess = self._take_guess(email, ip=ip)
        try:
            right = self.passwords.verify(password, password_hash)
        except Busy:
            LoginAttempt.delete().where(LoginAttempt.id == guess.id).execute()
            raise
        if right:
            LoginAttempt.update(succeeded=True).where(LoginAttempt.id == guess.id).execute()
        return right

    def _issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> TokenPair:
        now = utcnow()
        refresh = new_token()
        RefreshToken.create(
            family=session_id,
            token_digest=digest(refresh),
            expires_at=now + dt.timedelta(seconds=self.settings.refresh_token_seconds),
        )
        access = issue_access_token(self.settings, user_id=user_id, session_id=session_id, now=now)
        return TokenPair(access, refresh, self.settings.access_token_seconds)

    def refresh(self, refresh_token: str, *, ip: str) -> TokenPair:
        now = utcnow()
        with database.atomic():
            token = (
                RefreshToken.select(RefreshToken, AuthSession)
                .join(AuthSession)
                .where(RefreshToken.token_digest == digest(refresh_token))
                .for_update()
                .first()
            )
            if token is None or token.family.revoked_at is not None or token.expires_at <= now:
                raise NotAuthenticated("unauthorized", "the refresh token is invalid or expired")
            if token.used_at is not None:
                AuthSession.update(revoked_at=now).where(AuthSession.id == token.family.id).execute()
                audit("session.refresh_reuse", actor_id=token.family.user_id, target=str(token.family.id), ip=ip)
                log_event(
                    log, "refresh token reused; family revoked", level=logging.WARNING, session=str(token.family.id)
                )
                reused = True
            else:
                token.used_at = now
                token.save()
                reused = False
        if reused:
            raise NotAuthenticated(
                "unauthorized", "this refresh token was already used; every session of its login has been ended"
            )
        return self._issue(token.family.user_id, token.family.id)

    def logout(self, session_id: uuid.UUID, *, ip: str) -> None:
        session = AuthSession.get_by_id(session_id)
        AuthSession.update(revoked_at=utcnow()).where(
            AuthSession.id == session_id, AuthSession.revoked_at.is_null()
        ).execute()
        audit("user.logout", actor_id=session.user_id, ip=ip)

    def change_password(self, user: User, session_id: uuid.UUID, current: str, new: str, *, ip: str) -> None:
        if not self._guess(user.email, current, user.password_hash, ip=ip):
            raise NotAllowed("wrong_password", "the current password is wrong")
        self.check_password_policy(new)
        with database.atomic():
            self._set_password(user, new)
            AuthSession.update(revoked_at=utcnow()).where(
                AuthSession.user == user.id, AuthSession.id != session_id, AuthSession.revoked_at.is_null()
            ).execute()
        audit("user.password_changed", actor_id=user.id, ip=ip)

    def _set_password(self, user: User, password: str) -> None:
        user.password_hash = self.passwords.hash(password)
        user.password_changed_at = utcnow()
        user.save()

    @staticmethod
    def request_password_reset(email: str, *, ip: str, jobs: Jobs) -> None:
        """Hands the reset to a worker (`send_password_reset`): the request does the same work, one
        enqueue, whether the account exists or not, so neither its answer nor its timing tells."""
        jobs.enqueue(SEND_PASSWORD_RESET, normalise_email(email), ip)

    def send_password_reset(self, email: str, *, ip: str) -> None:
        """Mails a reset link if the account exists (in a worker); nothing otherwise."""
        user = User.get_or_none(User.email == email)
        if user is None:
            return
        token = new_token()
        with database.atomic():  # all or nothing, so a retried job mails one link, not a second
            OneTimeToken.create(
                purpose="reset",
                token_digest=digest(token),
                email=user.email,
                user=user,
                expires_at=utcnow() + dt.timedelta(seconds=self.settings.reset_token_seconds),
            )
            send_mail(
                user.email,
                "Reset your Adtivity password",
                f"Use this link within {self.settings.reset_token_seconds // 60} minutes to choose a new password:\n"
                f"{self.settings.public_base_url}/app/reset?token={token}\n",
            )
            audit("user.password_reset_requested", actor_id=user.id, ip=ip)

    def confirm_password_reset(self, token: str, new_password: str, *, ip: str) -> None:
        self.check_password_policy(new_password)
        now = utcnow()
        with database.atomic():
            row = consume_token("reset", token, now=now)
            user = User.get_by_id(row.user_id)
            self._set_password(user, new_password)
            AuthSession.update(revoked_at=now).where(
                AuthSession.user == user.id, AuthSession.revoked_at.is_null()
            ).execute()
        audit("user.password_reset", actor_id=user.id, ip=ip)

    def make_platform_admin(self, email: str, password: str | None) -> str:
        email = normalise_email(email)
        user = User.get_or_none(User.email == email)
        if user is None:
            if not password:
                raise Unprocessable("password_required", "a new user needs a password")
            user = self.register(email, password, ip="cli")
        User.update(is_platform_admin=True).where(User.id == user.id).execute()
        audit("user.platform_admin_granted", target=str(user.id), ip="cli")
        return f"{email} is a platform admin"


def consume_token(purpose: str, token: str, *, now: dt.datetime) -> OneTimeToken:
    """Marks a one-time token used and returns it; call inside a transaction. Unknown, used and
    expired tokens all answer the same 400, so a caller learns nothing from guessing."""
    row: OneTimeToken | None = (
        OneTimeToken.select()
        .where(OneTimeToken.purpose == purpose, OneTimeToken.token_digest == digest(token))
        .for_update()
        .first()
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidInput("invalid_token", "the token is invalid, used or expired")
    row.used_at = now
    row.save()
    return row
