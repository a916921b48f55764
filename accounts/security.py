"""Secrets and credentials: email spelling, opaque tokens and their digests, JWT access tokens and the
API-key string format. Pure functions of their inputs and Settings; no I/O. Passwords have their
own module (accounts/passwords.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

import jwt

from adtivity.errors import Unprocessable
from adtivity.settings import Settings

KEY_PREFIX = "adt"
KEY_KIND_LETTERS = {"write": "w", "read": "r"}
KEY_KINDS_BY_LETTER = {letter: kind for kind, letter in KEY_KIND_LETTERS.items()}


def normalise_email(email: str) -> str:
    """One spelling per address, so look-alikes cannot sit side by side: NFKC (fullwidth and other
    compatibility forms, accents composed) and case-folded. An address holding an invisible or
    bidirectional-control character (Unicode's format and control categories) is refused."""
    normalised = unicodedata.normalize("NFKC", email.strip()).casefold()
    if any(unicodedata.category(character) in ("Cf", "Cc") for character in normalised):
        raise Unprocessable("invalid_email", "an email may not hold invisible or text-direction characters")
    return normalised


def new_token() -> str:
    """An opaque random token (refresh, reset, invite): 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 hex digest: how tokens and key secrets are stored. Random 256-bit secrets need no slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    expires_at: int


def issue_access_token(settings: Settings, *, user_id: uuid.UUID, session_id: uuid.UUID, now: dt.datetime) -> str:
    issued = int(now.replace(tzinfo=dt.UTC).timestamp())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": issued,
        "exp": issued + settings.access_token_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def read_access_token(settings: Settings, token: str) -> AccessClaims | None:
    """The claims of a valid, unexpired token of ours; None for anything else."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]},
        )
        return AccessClaims(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), claims["jti"], claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class KeyString:
    kind: str
    public_id: str
    secret: str


def new_key(kind: str) -> tuple[str, KeyString]:
    """A fresh API key: the string shown once (`adt_w_<id>_<secret>`), and its parts."""
    parts = KeyString(kind=kind, public_id=secrets.token_hex(8), secret=secrets.token_hex(32))
    return f"{KEY_PREFIX}_{KEY_KIND_LETTERS[kind]}_{parts.public_id}_{parts.secret}", parts


def parse_key(value: str) -> KeyString | None:
    pieces = value.split("_")
    if len(pieces) != 4 or pieces[0] != KEY_PREFIX or pieces[1] not in KEY_KINDS_BY_LETTER:
        return None
    public_id, secret = pieces[2], pieces[3]
    if len(public_id) != 16 or len(secret) != 64:
        return None
    return KeyString(kind=KEY_KINDS_BY_LETTER[pieces[1]], public_id=public_id, secret=secret)
