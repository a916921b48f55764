"""Cross-cutting middleware: request ids, CORS, a structured log line per request, and the headers
every answer carries (nosniff, no-store when authenticated, the Content-Security-Policy on HTML)."""

from __future__ import annotations

import logging
import re
import time

import falcon
import sentry_sdk
import uuid_utils

from adtivity import querymetrics
from adtivity.logs import log_event

log = logging.getLogger("web.requests")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
QUIET_PATHS = frozenset({"/health", "/metrics"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class RequestId:
    """Carries the caller's X-Request-Id (when well-formed) or a new one, and echoes it back."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id")
        req.context.request_id = given if given and REQUEST_ID.match(given) else uuid_utils.uuid4().hex
        req.context.started_at = time.perf_counter()
        sentry_sdk.set_tag("request_id", req.context.request_id)  # the request's own scope; a no-op without Sentry
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params: dict) -> None:
        """A slow query names the route and request that ran it."""
        querymetrics.origin.set(querymetrics.Origin(req.uri_template or "", req.context.request_id))

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if req.path in QUIET_PATHS:
            return
        log_event(
            log,
            "request",
            method=req.method,
            route=req.uri_template or "unmatched",
            status=resp.status_code,
            ms=round((time.perf_counter() - req.context.started_at) * 1000, 2),
            request_id=req.context.request_id,
        )


class Cors:
    """Ingest paths are open to every origin (no credentials: write keys are public anyway);
    the dashboard API answers CORS only for the allow-listed origins."""

    ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, X-API-Key, X-Request-Id"
    METHODS = "GET, POST, PATCH, DELETE, OPTIONS"

    def __init__(self, *, ingest_prefixes: tuple[str, ...], allowed_origins: tuple[str, ...]) -> None:
        self.ingest_prefixes = ingest_prefixes
        self.allowed_origins = frozenset(allowed_origins)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method"):
            self._headers(req, resp, preflight=True)
            resp.status = falcon.HTTP_204
            resp.complete = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not resp.complete:
            self._headers(req, resp, preflight=False)

    def _headers(self, req: falcon.Request, resp: falcon.Response, *, preflight: bool) -> None:
        origin = req.get_header("Origin")
        if not origin:
            return
        if req.path.startswith(self.ingest_prefixes):
            resp.set_header("Access-Control-Allow-Origin", "*")
        elif origin in self.allowed_origins:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.append_header("Vary", "Origin")
        else:
            return
        resp.set_header("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
        if preflight:
            resp.set_header("Access-Control-Allow-Methods", self.METHODS)
            resp.set_header("Access-Control-Allow-Headers", self.ALLOW_HEADERS)
            resp.set_header("Access-Control-Max-Age", "600")


def answering_head(resource):
    """The resource, answering HEAD as it answers GET (Falcon sends no body to a HEAD): uptime and
    link checkers send HEAD."""
    if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
        resource.on_head = resource.on_get
    return resource


class ResponseHeaders:
    """Every answer says nosniff (its type is what it declares) and sends no referrer to other
    origins; with `hsts_seconds`, browsers keep to HTTPS for that long (Strict-Transport-Security);
    an answer to an authenticated request is never stored by a browser or a proxy (Cache-Control:
    no-store), unless its resource set a Cache-Control of its own; every HTML answer, whatever path
    reached it (a page, a static file, an error page), carries the Content-Security-Policy and may
    not be framed."""

    def __init__(self, *, hsts_seconds: int = 0) -> None:
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds else ""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "same-origin")
        if self.hsts:
            resp.set_header("Strict-Transport-Security", self.hsts)
        if (resp.content_type or "").startswith("text/html"):
            resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            resp.set_header("X-Frame-Options", "DENY")
        if getattr(req.context, "principal", None) is not None and resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
