"""Ingest endpoints: native `/v1/events`, Segment's `/v1/{track,identify,page,screen,group,alias,batch}`,
the original SDK's `/sdk/event`, and `/v1/companies/{id}/test-events` for members trying things out.

All authenticate with a write key (Bearer, X-API-Key, HTTP Basic username, or Segment's `writeKey`
in the body), answer at once, and report each rejected event by index without failing the others.
"""
from __future__ import annotations

import datetime as dt
from functools import partial

import falcon
import msgspec

from adtivity.settings import Settings
from models.db import utcnow
from web.bodies import too_deep
from web.errors import ApiError, forbidden, unauthorized
from web.ingest import wire
from web.ingest.enrich import RequestInfo
from web.ingest.pipeline import IngestPipeline, Items, Outcome, split_legacy, split_native, split_segment
from web.keycache import KeyRecord
from web.principals import KeyAuthenticator, KeyPrincipal, client_ip, company_access


_native_event = msgspec.json.Decoder(wire.NativeEvent)


def answer(resp: falcon.Response, outcome: Outcome) -> None:
    resp.media = {"success": True, "accepted": outcome.accepted, "rejected": outcome.rejected}


def decode_envelope(split, body: bytes, max_depth: int) -> Items:
    """The body cut into items. Its events' depth is checked one by one (pipeline.accept), so a deep
    one fails alone; a body too deep to decode at all (Python's recursion limit) is a 400."""
    try:
        return split(body)
    except msgspec.ValidationError as error:
        raise ApiError(422, "invalid_body", str(error)) from None
    except msgspec.DecodeError:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    except RecursionError:
        raise too_deep(max_depth) from None


class Ingest:
    """One ingest endpoint; `split` cuts the body into items, `build` turns one item into an Incoming
    (or what reads as one)."""
    PUBLIC = True

    def __init__(self, settings: Settings, pipeline: IngestPipeline, key_authenticator: KeyAuthenticator, *,
                 split, build) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.key_authenticator = key_authenticator
        self.split = split
        self.build = build
        # The CDN country headers as WSGI keys, looked up directly (falcon's get_header maps a name each call).
        self.country_keys = tuple(f"HTTP_{name.upper().replace('-', '_')}" for name in settings.country_headers)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.pipeline.read_body(req)
        try:
            items = decode_envelope(self.split, body, self.settings.max_json_depth)
        except ApiError:
            if req.context.principal is None:  # no key in a header, and no body to find one in
                raise unauthorized("a write key is required") from None
            raise
        key = self.write_key(req, items.write_key)
        received_at = dt.datetime.now(dt.timezone.utc)
        request = RequestInfo(
            company_id=str(key.company_id), received_at=received_at, sent_at=items.sent_at,
            user_agent=req.get_header("User-Agent") or "", ip=client_ip(req),
            country=next(filter(None, map(req.env.get, self.country_keys)), ""),
            request_id=req.context.request_id,
        )
        answer(resp, self.pipeline.accept(key, items, partial(self.build, items), request))

    def write_key(self, req: falcon.Request, body_key: str | None) -> KeyRecord:
        principal = req.context.principal
        if principal is None and body_key:
            principal = self.key_authenticator.principal(body_key, client_ip(req))
        if principal is None:
            raise unauthorized("a write key is required")
        if not isinstance(principal, KeyPrincipal) or principal.key.kind != "write":
            raise forbidden("sending events needs a write key")
        return principal.key


def build_native(items: Items, raw: bytes) -> wire.NativeEvent:
    return _native_event.decode(raw)


def build_segment(message_type: str | None, items: Items, raw: bytes) -> wire.Incoming:
    message = msgspec.json.decode(raw, type=wire.SegmentMessage)
    if message.context is None and items.context:
        message.context = items.context
    if not (message_type or message.type):
        raise msgspec.ValidationError("Expected `str` - at `$.type`")
    return message.incoming(message_type)


def build_legacy(items: Items, raw: bytes) -> wire.Incoming:
    return msgspec.json.decode(raw, type=wire.LegacyEvent).incoming()


def ingest_routes(settings: Settings, pipeline: IngestPipeline,
                  key_authenticator: KeyAuthenticator) -> dict[str, Ingest]:
    make = partial(Ingest, settings, pipeline, key_authenticator)
    routes = {
        "/v1/events": make(split=split_native, build=build_native),
        "/v1/batch": make(split=partial(split_segment, batched=True), build=partial(build_segment, None)),
        "/sdk/event": make(split=split_legacy, build=build_legacy),
    }
    for message_type in ("track", "identify", "page", "screen", "group", "alias"):
        routes[f"/v1/{message_type}"] = make(split=partial(split_segment, batched=False),
                                             build=partial(build_segment, message_type))
    return routes


class TestEvents:
    """`POST /v1/companies/{id}/test-events`: a member sends a sample event through the real pipeline."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="member")
        now = dt.datetime.now(dt.timezone.utc)
        request = RequestInfo(company_id=str(access.company.id), received_at=now, sent_at=None,
                              user_agent=req.get_header("User-Agent") or "", ip=client_ip(req), country="",
                              request_id=req.context.request_id)
        incoming = wire.Incoming(type="track", name="Test Event", user_id=str(access.user.id),
                                 properties={"sent_by": access.user.email, "at": utcnow().isoformat()})
        event = self.pipeline.enricher.build(incoming, request)
        self.pipeline.write([event], request, rate_subject=f"test-events:{access.company.id}")
        resp.status = falcon.HTTP_202
        resp.media = {"success": True, "accepted": 1, "rejected": [], "message_id": event.message_id}
