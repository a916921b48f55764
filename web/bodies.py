"""Request and response bodies: JSON through msgspec, validated once before a responder runs.

A resource declares the body it accepts per method (`POST_SCHEMA = CreateCompany`); the
`ValidateBody` middleware decodes the request into that msgspec struct and puts it on
`req.context.body`, or answers 400 (not JSON, or nested deeper than MAX_JSON_DEPTH) / 422 (wrong
shape) / 413 (too large) itself.
"""

from __future__ import annotations

import falcon
import falcon.media
import msgspec

from adtivity.jsontext import has_nul, nests_deeper_than, too_deep
from web.errors import ApiError, http_error

_encoder = msgspec.json.Encoder()


class MsgspecJson(falcon.media.BaseHandler):
    """Falcon media handler: responses are encoded with msgspec (fast, and handles UUID and datetime)."""

    def __init__(self, *, max_depth: int) -> None:
        super().__init__()
        self.max_depth = max_depth

    def serialize(self, media, content_type) -> bytes:
        return _encoder.encode(media)

    def deserialize(self, stream, content_type, content_length) -> object:
        return decode_json(stream.read(), object, max_depth=self.max_depth)


def decode_json(raw: bytes, schema: type, *, max_depth: int):
    if not raw:
        raise ApiError(400, "invalid_json", "the request body is empty; a JSON body is required")
    if nests_deeper_than(raw, max_depth):
        raise http_error(too_deep(max_depth))
    try:
        decoded = msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as error:
        raise ApiError(422, "invalid_body", str(error)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for bad bytes in a string
        raise ApiError(400, "invalid_json", "the request body is not valid JSON (UTF-8)") from None
    if b"\\u0000" in raw and has_nul(msgspec.json.decode(raw)):
        raise ApiError(422, "invalid_body", "strings may not contain the NUL character (\\u0000)")
    return decoded


def read_bounded(req: falcon.Request, limit: int) -> bytes:
    """The request body, or 413 if it is (or says it is) longer than `limit` bytes. A chunked body
    (no Content-Length, as Go's net/http, node streams and some SDKs send) is read to its end, which
    the server (gunicorn) finds by decoding the chunks, under the same limit."""
    if req.content_length is not None and req.content_length > limit:
        raise ApiError(413, "payload_too_large", f"the body may be at most {limit} bytes")
    chunked = req.content_length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    body = (req.stream if chunked else req.bounded_stream).read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, "payload_too_large", f"the body may be at most {limit} bytes")
    return body


def given_fields(body: msgspec.Struct) -> dict:
    """A decoded body as a dict of the fields that hold a value (a None field is left out, so the
    domain applies its own default)."""
    return {name: value for name, value in msgspec.structs.asdict(body).items() if value is not None}


class ValidateBody:
    """Decodes the body of any request whose resource declares `<METHOD>_SCHEMA`."""

    def __init__(self, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        schema = getattr(resource, f"{req.method}_SCHEMA", None)
        if schema is None:
            return
        req.context.body = decode_json(read_bounded(req, self.max_body_bytes), schema, max_depth=self.max_json_depth)
