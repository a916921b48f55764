"""Postgres models of the platform: users, companies, memberships, API keys, sessions and tokens,
login attempts, the mail outbox and the audit log. The tables themselves are made by the numbered
migrations in models/migrations/postgres; these classes only describe them."""

from __future__ import annotations

import uuid

import peewee

from models.db import BaseModel, new_id, utcnow

ROLES = ("viewer", "member", "admin", "owner")


def role_rank(role: str) -> int:
    return ROLES.index(role)


class User(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    email = peewee.TextField(unique=True)
    password_hash = peewee.TextField()
    is_platform_admin = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    password_changed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "users"


class Company(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    name = peewee.TextField()
    owner = peewee.ForeignKeyField(User, column_name="owner_id", on_delete="RESTRICT")
    created_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)
    retention_months = peewee.IntegerField(default=13)

    class Meta:
        table_name = "companies"


class Membership(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    company = peewee.ForeignKeyField(Company, column_name="company_id", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID  # the foreign key's value, which peewee adds
    role = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "memberships"


class ApiKey(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    company = peewee.ForeignKeyField(Company, column_name="company_id", on_delete="CASCADE")
    kind = peewee.TextField()
    public_id = peewee.TextField(unique=True)
    secret_digest = peewee.TextField()
    label = peewee.TextField(default="")
    created_by = peewee.ForeignKeyField(User, column_name="created_by", null=True, on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    expires_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_keys"


class AuthSession(BaseModel):
    """A login: the family of refresh tokens it issued. Revoking it ends every token of the family."""

    id = peewee.UUIDField(primary_key=True, default=new_id)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID  # the foreign key's value, which peewee adds
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "auth_sessions"


class RefreshToken(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    family = peewee.ForeignKeyField(AuthSession, column_name="family_id", on_delete="CASCADE")
    token_digest = peewee.TextField(unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "refresh_tokens"


class OneTimeToken(BaseModel):
    """A password-reset or invite token: stored as a digest, single use, expiring."""

    id = peewee.UUIDField(primary_key=True, default=new_id)
    purpose = peewee.TextField()
    token_digest = peewee.TextField(unique=True)
    email = peewee.TextField()
    user = peewee.ForeignKeyField(User, column_name="user_id", null=True, on_delete="CASCADE")
    company = peewee.ForeignKeyField(Company, column_name="company_id", null=True, on_delete="CASCADE")
    user_id: uuid.UUID | None  # the foreign keys' values, which peewee adds
    company_id: uuid.UUID | None
    role = peewee.TextField(null=True)
    created_by = peewee.ForeignKeyField(
        User, column_name="created_by", null=True, on_delete="SET NULL", backref="tokens_created"
    )
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "one_time_tokens"


class LoginAttempt(BaseModel):
    id = peewee.BigAutoField()
    email = peewee.TextField()
    ip = peewee.TextField()
    succeeded = peewee.BooleanField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "login_attempts"


class MailOutbox(BaseModel):
    id = peewee.BigAutoField()
    to_email = peewee.TextField()
    subject = peewee.TextField()
    body = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "mail_outbox"


class AuditLog(BaseModel):
    id = peewee.BigAutoField()
    company_id = peewee.UUIDField(null=True)
    actor_id = peewee.UUIDField(null=True)
    action = peewee.TextField()
    target = peewee.TextField(default="")
    ip = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "audit_log"


ALL_MODELS = (
    User,
    Company,
    Membership,
    ApiKey,
    AuthSession,
    RefreshToken,
    OneTimeToken,
    LoginAttempt,
    MailOutbox,
    AuditLog,
)
