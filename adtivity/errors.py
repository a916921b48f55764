"""Domain errors: what the domain packages (ingest, accounts) and the data layer raise when a request
cannot be done. Each carries a stable `code` (machine-readable), a `message` a client may read and
optional `details`; the web translates each kind to its HTTP status in one place (web/errors.py) and
the CLI to an exit message. None of them knows about HTTP."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str, *, details: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    """The input cannot be read or used as given (not JSON, empty, an unknown token)."""


class Unprocessable(DomainError):
    """The input is well formed but breaks a rule (wrong shape, a weak password)."""


class NotAuthenticated(DomainError):
    """Who is asking is unknown: no credentials, or wrong ones."""


class NotAllowed(DomainError):
    """Who is asking is known and may not do this."""


class NotFound(DomainError):
    """The thing does not exist, or belongs to another tenant."""


class Conflict(DomainError):
    """It would clash with what exists (an email already registered)."""


class TooLarge(DomainError):
    """Over a size limit (a body, a batch)."""


class UnsupportedEncoding(DomainError):
    """A content encoding the service does not read."""


class RateLimited(DomainError):
    """Over a rate or a lockout; `retry_after` seconds until the next attempt may succeed."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__("rate_limited", message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Busy(DomainError):
    """The service is at its bound for this kind of work; `retry_after` seconds until a retry may succeed."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__("busy", message, details={"retry_after": retry_after})
        self.retry_after = retry_after
