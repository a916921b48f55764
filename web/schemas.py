"""The bodies the dashboard API accepts and returns, as msgspec structs.

Validation happens by decoding into these (see web/bodies.py); the OpenAPI document is generated
from the same structs, so the description cannot drift from what the code enforces.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Label = Annotated[str, msgspec.Meta(max_length=200)]
Role = Literal["viewer", "member", "admin", "owner"]
InvitableRole = Literal["viewer", "member", "admin"]
KeyKind = Literal["write", "read"]

T = TypeVar("T")


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Request bodies: unknown fields are an error, not silently ignored."""


# Requests.
class Credentials(Strict):
    email: Email
    password: Password


class RefreshRequest(Strict):
    refresh_token: Token


class PasswordChange(Strict):
    current_password: Password
    new_password: Password


class PasswordResetRequest(Strict):
    email: Email


class PasswordResetConfirm(Strict):
    token: Token
    new_password: Password


class CompanyCreate(Strict):
    name: Name


class CompanyUpdate(Strict):
    """A rename, a new retention (months of raw events and rollups kept), or both."""

    name: Name | None = None
    retention_months: Annotated[int, msgspec.Meta(ge=1, le=120)] | None = None


class InviteCreate(Strict):
    email: Email
    role: InvitableRole = "member"


class MemberUpdate(Strict):
    role: InvitableRole


class OwnershipTransfer(Strict):
    user_id: uuid.UUID


class KeyCreate(Strict):
    kind: KeyKind
    label: Label = ""


class KeyRotate(Strict):
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)] | None = None


class QueryRequest(Strict):
    """POST /v1/companies/{id}/query (queries/spec.py checks the names and values)."""

    metrics: list[str]
    date_range: str | list[str] = "7d"
    dimensions: list[str] = []
    filters: list[list[Any]] = []
    timezone: str = "UTC"
    order_by: list[list[str]] | None = None
    limit: int = 100
    offset: int = 0


class SegmentBody(Strict):
    """A saved segment (queries/segments.py checks the rule or the list)."""

    name: str
    kind: Literal["rule", "static"]
    rule: dict[str, Any] | None = None
    user_ids: list[str] | str | None = None
    wallets: list[str] | str | None = None


# Responses.
class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


class TokenPairOut(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


class UserOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    is_platform_admin: bool
    created_at: dt.datetime


class CompanyOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    retention_months: int
    role: Role | None = None


class MeOut(msgspec.Struct):
    user: UserOut
    companies: list[CompanyOut]


class MemberOut(msgspec.Struct):
    user_id: uuid.UUID
    email: str
    role: Role
    joined_at: dt.datetime


class InviteOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    role: Role
    created_at: dt.datetime
    expires_at: dt.datetime
    accepted: bool


class KeyOut(msgspec.Struct):
    id: uuid.UUID
    kind: KeyKind
    public_id: str
    label: str
    created_at: dt.datetime
    created_by: uuid.UUID | None
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class KeyCreated(msgspec.Struct):
    key: str
    details: KeyOut


class Accepted(msgspec.Struct):
    status: str
    message: str
