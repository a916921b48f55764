"""The one JSON error shape, and the translation of domain errors into it.

Every 4xx and 5xx answers `{"error": {"code", "message", "details"}}`. Responders raise `ApiError`,
or the domain packages raise a domain error (adtivity/errors.py), translated here by its kind
(`STATUS_OF`); anything else becomes a bare 500 whose body says nothing about the cause, while the log
keeps the trace and the request id.
"""

from __future__ import annotations

import logging

import falcon
import msgspec

from adtivity import errors
from adtivity.logs import log_event

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


class ApiError(falcon.HTTPError):
    def __init__(self, status: int, code: str, message: str, *, details=None, headers=None) -> None:
        super().__init__(falcon.code_to_http_status(status), title=code, description=message, headers=headers)
        self.code = code
        self.details = details


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "your role does not allow this") -> ApiError:
    return ApiError(403, "forbidden", message)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def too_many_requests(retry_after: int, message: str = "too many requests") -> ApiError:
    return ApiError(
        429, "rate_limited", message, details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
    )


STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 400,
    errors.NotAuthenticated: 401,
    errors.NotAllowed: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedEncoding: 415,
    errors.Unprocessable: 422,
    errors.RateLimited: 429,
    errors.Busy: 503,
}


def http_error(error: errors.DomainError) -> ApiError:
    """The HTTP answer to a domain error: its kind's status, its code, message and details."""
    status = next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)
    if isinstance(error, errors.RateLimited):
        return too_many_requests(error.retry_after, error.message)
    if isinstance(error, errors.Busy):
        return ApiError(
            503, error.code, error.message, details=error.details, headers={"Retry-After": str(error.retry_after)}
        )
    if isinstance(error, errors.NotAuthenticated):
        return ApiError(401, error.code, error.message, details=error.details, headers={"WWW-Authenticate": "Bearer"})
    return ApiError(status, error.code, error.message, details=error.details)


def handle_domain_error(req: falcon.Request, resp: falcon.Response, error: errors.DomainError, params: dict) -> None:
    raise http_error(error)


def _code_of(error: falcon.HTTPError) -> str:
    if isinstance(error, ApiError):
        return error.code
    return (error.title or "error").lower().replace(" ", "_").replace("-", "_")


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's error serializer, replaced so every error has our shape (and always JSON)."""
    message = error.description or error.title or "error"
    body = {"error": {"code": _code_of(error), "message": message, "details": getattr(error, "details", None)}}
    resp.content_type = falcon.MEDIA_JSON
    resp.data = _encoder.encode(body)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params: dict) -> None:
    if isinstance(error, falcon.HTTPError):
        raise error
    log_event(
        log,
        "unhandled error",
        level=logging.ERROR,
        method=req.method,
        route=req.uri_template or "unmatched",
        request_id=getattr(req.context, "request_id", None),
        error_type=type(error).__name__,
        exc_info=error,
    )
    raise ApiError(500, "internal_error", "an internal error occurred; it has been logged")


def handle_unavailable(req: falcon.Request, resp: falcon.Response, error: Exception, params: dict) -> None:
    """A store we depend on did not answer: 503 with Retry-After, never a hang or a trace."""
    log_event(
        log,
        "dependency unavailable",
        level=logging.WARNING,
        route=req.uri_template or "unmatched",
        error_type=type(error).__name__,
    )
    raise ApiError(
        503, "unavailable", "a service this request needs is unavailable; retry shortly", headers={"Retry-After": "1"}
    )
