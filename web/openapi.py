"""The OpenAPI 3.1 document, built at start-up from the routes the app really serves and the msgspec
structs it really validates with (a resource's `POST_SCHEMA`/`PATCH_SCHEMA`, and the ingest formats),
so it cannot drift from the code. Served at `/openapi.json`; `/docs` (web/resources/dashboard.py)
renders it in the browser with nothing fetched from elsewhere."""

from __future__ import annotations

import inspect
import re
from typing import Any

import falcon
import msgspec

from ingest import wire
from web import schemas

METHODS = ("get", "post", "put", "patch", "delete")
COMPONENTS = "#/components/schemas/{name}"


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: Any = None


class ErrorBody(msgspec.Struct):
    """Every 4xx and 5xx answer."""

    error: ErrorDetail


class NativeBatch(msgspec.Struct):
    batch: list[wire.NativeEvent]
    sent_at: str | None = None
    write_key: str | None = None


class SegmentBatch(msgspec.Struct, rename="camel"):
    """Segment's batch, as its SDKs send it."""

    batch: list[wire.SegmentMessage]
    sent_at: str | None = None
    context: dict | None = None
    write_key: str | None = None


# Request bodies of the ingest routes, which read their bodies themselves. /v1/events also takes a
# single event object (msgspec cannot describe a union of untagged structs, so it is left out here).
INGEST_BODIES = {
    "/v1/events": list[wire.NativeEvent] | NativeBatch,
    "/v1/batch": SegmentBatch,
    "/sdk/event": list[wire.LegacyEvent] | wire.LegacyEvent,
    **{f"/v1/{kind}": wire.SegmentMessage for kind in ("track", "identify", "page", "screen", "group", "alias")},
}
SEGMENT_TRACK = {
    "type": "track",
    "event": "Signed Up",
    "userId": "u-42",
    "messageId": "m-2",
    "properties": {"plan": "pro"},
    "timestamp": "2026-11-30T10:00:00Z",
}
EXAMPLES = {
    schemas.Credentials: {"email": "ada@example.com", "password": "correct horse battery staple"},
    schemas.RefreshRequest: {"refresh_token": "JoZrNU3fpUT0ebshX2DPl9yIIEWq682OS9FXo2ocuGI"},
    schemas.PasswordChange: {
        "current_password": "correct horse battery staple",
        "new_password": "a longer new passphrase",
    },
    schemas.PasswordResetRequest: {"email": "ada@example.com"},
    schemas.PasswordResetConfirm: {"token": "s3cr3t-reset-token", "new_password": "a longer new passphrase"},
    schemas.CompanyCreate: {"name": "Acme"},
    schemas.CompanyUpdate: {"name": "Acme Inc.", "retention_months": 24},
    schemas.InviteCreate: {"email": "grace@example.com", "role": "admin"},
    schemas.MemberUpdate: {"role": "viewer"},
    schemas.OwnershipTransfer: {"user_id": "5f264c4c-d3b1-4bb5-9a37-44a7f1c0c2aa"},
    schemas.KeyCreate: {"kind": "write", "label": "website"},
    schemas.KeyRotate: {"grace_seconds": 3600},
    schemas.QueryRequest: {
        "metrics": ["users", "page_views", "bounce_rate"],
        "date_range": ["2026-11-01", "2026-11-30"],
        "dimensions": ["time:day", "country"],
        "filters": [
            ["is", "country", ["DE", "FR"]],
            ["contains", "page_path", ["/pricing"]],
            ["or", [["is", "utm_source", ["newsletter"]], ["matches", "referrer_domain", ["^news\\."]]]],
            ["is", "property:plan", ["pro"]],
        ],
        "timezone": "Europe/Berlin",
        "order_by": [["time:day", "asc"], ["users", "desc"]],
        "limit": 100,
        "offset": 0,
    },
    schemas.SegmentBody: {
        "name": "Pro users who swapped on Base",
        "kind": "rule",
        "rule": {
            "all": [
                {"user_property": ["is", "plan", ["pro"]]},
                {"did": {"event": "Swap", "filters": [["is", "chain", ["8453"]]], "min_times": 1, "date_range": "30d"}},
            ]
        },
    },
    INGEST_BODIES["/v1/events"]: [
        {
            "type": "track",
            "name": "Signup",
            "user_id": "u-42",
            "message_id": "m-1",
            "properties": {"plan": "pro"},
            "timestamp": "2026-11-30T10:00:00Z",
        }
    ],
    SegmentBatch: {"batch": [SEGMENT_TRACK], "sentAt": "2026-11-30T10:00:01Z", "writeKey": "adt_w_..."},
    wire.SegmentMessage: SEGMENT_TRACK,
    INGEST_BODIES["/sdk/event"]: [
        {"type": "track", "eventName": "Legacy", "user_id": "l-1", "wallet_address": "0x" + "ab" * 20, "chain_id": "1"}
    ],
}


def summary_of(resource, responder) -> str:
    text = inspect.getdoc(responder) or inspect.getdoc(type(resource)) or ""
    return text.split("\n\n")[0].replace("\n", " ")


def tag_of(path: str) -> str:
    parts = [p for p in path.split("/") if p and not p.startswith("{") and p != "v1"]
    if len(parts) > 1 and parts[0] == "companies":
        return parts[1]
    return parts[0] if parts else "system"


def build(routes: list[tuple[str, object]]) -> dict:
    paths: dict[str, dict] = {}
    bodies: list = [ErrorBody]
    for path, resource in routes:
        operations = {}
        for method in METHODS:
            responder = getattr(resource, f"on_{method}", None)
            if responder is None:
                continue
            body = getattr(resource, f"{method.upper()}_SCHEMA", None)
            if body is None and method == "post":
                body = INGEST_BODIES.get(path)
            operation = {
                "operationId": f"{method}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}",
                "summary": summary_of(resource, responder),
                "tags": [tag_of(path)],
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in re.findall(r"{(\w+)}", path)
                ],
                "responses": {
                    "2XX": {"description": "success"},
                    "4XX": {
                        "description": "the request cannot be served as sent",
                        "content": {"application/json": {"schema": {"$ref": COMPONENTS.format(name="ErrorBody")}}},
                    },
                    "5XX": {
                        "description": "a service the request needs is unavailable (with Retry-After), or a bug",
                        "content": {"application/json": {"schema": {"$ref": COMPONENTS.format(name="ErrorBody")}}},
                    },
                },
            }
            if body is not None:
                bodies.append(body)
                content = {"schema": msgspec.json.schema_components([body], ref_template=COMPONENTS)[0][0]}
                if body in EXAMPLES:
                    content["example"] = EXAMPLES[body]
                operation["requestBody"] = {"required": True, "content": {"application/json": content}}
            operations[method] = operation
        if operations:
            paths[path] = operations
    _, components = msgspec.json.schema_components(bodies, ref_template=COMPONENTS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Adtivity API",
            "version": "1",
            "description": "Product and web3 analytics: ingest with a write key, read with a login or a read key.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an access token from /v1/auth/login, or an API key (write: ingest; read: reading)",
                },
                "writeKeyBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Segment-style: the write key as the user name",
                },
            },
        },
        "security": [{"bearer": []}, {"writeKeyBasic": []}],
    }


class Document:
    PUBLIC = True

    def __init__(self, routes: list[tuple[str, object]]) -> None:
        self._routes = routes
        self._body: bytes | None = None  # built on the first request: most apps (tests, CLI) never ask

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The OpenAPI 3.1 description of this API."""
        if self._body is None:
            self._body = msgspec.json.encode(build(self._routes))
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON
