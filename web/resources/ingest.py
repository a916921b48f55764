"""Ingest endpoints: native `/v1/events`, Segment's `/v1/{track,identify,page,screen,group,alias,batch}`,
the original SDK's `/sdk/event`, and `/v1/companies/{id}/test-events` for members trying things out.

All authenticate with a write key (Bearer, X-API-Key, HTTP Basic username, or Segment's `writeKey`
in the body) and answer at once. They only read the request and answer: the accept path is
ingest/accept.py, and its domain errors become HTTP answers in web/errors.py.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

import falcon

from adtivity.errors import DomainError
from adtivity.settings import Settings
from ingest import wire
from ingest.accept import IngestPipeline, Outcome, decoded_body, split_body
from ingest.enrich import RequestInfo
from ingest.formats import build_legacy, build_native, build_segment, split_legacy, split_native, split_segment
from models.db import utcnow
from web.bodies import read_bounded
from web.errors import forbidden, unauthorized
from web.keycache import KeyRecord
from web.principals import KeyAuthenticator, KeyPrincipal, client_ip, company_access


def answer(resp: falcon.Response, outcome: Outcome) -> None:
    resp.media = {"success": True, "accepted": outcome.accepted, "rejected": outcome.rejected}


class Ingest:
    """One ingest endpoint; `split` cuts the body into items, `build` turns one item into an Incoming
    (or what reads as one)."""

    PUBLIC = True

    def __init__(
        self, settings: Settings, pipeline: IngestPipeline, key_authenticator: KeyAuthenticator, *, split, build
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.key_authenticator = key_authenticator
        self.split = split
        self.build = build
        # The CDN country headers as WSGI keys, looked up directly (falcon's get_header maps a name each call).
        self.country_keys = tuple(f"HTTP_{name.upper().replace('-', '_')}" for name in settings.country_headers)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = self.settings.max_body_bytes
        body = decoded_body(read_bounded(req, limit), req.get_header("Content-Encoding") or "", limit)
        try:
            items = split_body(self.split, body, self.settings.max_json_depth)
        except DomainError:
            if req.context.principal is None:  # no key in a header, and no body to find one in
                raise unauthorized("a write key is required") from None
            raise
        key = self.write_key(req, items.write_key)
        request = RequestInfo(
            company_id=str(key.company_id),
            received_at=dt.datetime.now(dt.UTC),
            sent_at=items.sent_at,
            user_agent=req.get_header("User-Agent") or "",
            ip=client_ip(req),
            country=next(filter(None, map(req.env.get, self.country_keys)), ""),
            request_id=req.context.request_id,
        )
        answer(resp, self.pipeline.accept(key.public_id, items, partial(self.build, items), request))

    def write_key(self, req: falcon.Request, body_key: str | None) -> KeyRecord:
        principal = req.context.principal
        if principal is None and body_key:
            principal = self.key_authenticator.principal(body_key, client_ip(req))
        if principal is None:
            raise unauthorized("a write key is required")
        if not isinstance(principal, KeyPrincipal) or principal.key.kind != "write":
            raise forbidden("sending events needs a write key")
        return principal.key


def ingest_routes(
    settings: Settings, pipeline: IngestPipeline, key_authenticator: KeyAuthenticator
) -> dict[str, Ingest]:
    make = partial(Ingest, settings, pipeline, key_authenticator)
    routes = {
        "/v1/events": make(split=split_native, build=build_native),
        "/v1/batch": make(split=partial(split_segment, batched=True), build=partial(build_segment, None)),
        "/sdk/event": make(split=split_legacy, build=build_legacy),
    }
    for message_type in ("track", "identify", "page", "screen", "group", "alias"):
        routes[f"/v1/{message_type}"] = make(
            split=partial(split_segment, batched=False), build=partial(build_segment, message_type)
        )
    return routes


class TestEvents:
    """`POST /v1/companies/{id}/test-events`: a member sends a sample event through the real pipeline."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="member")
        now = dt.datetime.now(dt.UTC)
        request = RequestInfo(
            company_id=str(access.company.id),
            received_at=now,
            sent_at=None,
            user_agent=req.get_header("User-Agent") or "",
            ip=client_ip(req),
            country="",
            request_id=req.context.request_id,
        )
        incoming = wire.Incoming(
            type="track",
            name="Test Event",
            user_id=str(access.user.id),
            properties={"sent_by": access.user.email, "at": utcnow().isoformat()},
        )
        event = self.pipeline.enricher.build(incoming, request)
        self.pipeline.write([event], request, rate_subject=f"test-events:{access.company.id}")
        resp.status = falcon.HTTP_202
        resp.media = {"success": True, "accepted": 1, "rejected": [], "message_id": event.message_id}
