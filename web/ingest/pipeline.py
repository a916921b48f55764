"""Ingest, format-independent: body limits and gzip, per-event decoding and validation, enrichment,
session ids, the per-key rate limit, and the one XADD that makes a request's events durable."""
from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import falcon
import msgspec
import redis

from adtivity.settings import Settings
from models.events import Event
from models import redis_keys
from models.streams import encode_events, shard_for, stream_key
from web.bodies import nests_deeper_than, read_bounded
from web.errors import ApiError, too_many_requests
from web.ingest import wire
from web.ingest.enrich import Enricher, Rejected, RequestInfo
from web.ingest.write import EventWriter
from web.keycache import KeyRecord
from web.metrics import INGEST_EVENTS, Series
from web.ratelimit import Limit


@dataclass(frozen=True)
class Outcome:
    accepted: int
    rejected: list[dict]


@dataclass
class Items:
    """A request's events as raw JSON, with what the envelope around them said."""

    raws: list[bytes]
    wire_format: str  # "native", "segment" or "legacy" (the label of its events in the metrics)
    sent_at: dt.datetime | None = None
    write_key: str | None = None
    context: dict | None = None


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} may be at most {limit}")


class IngestPipeline:
    def __init__(self, settings: Settings, client: redis.Redis, enricher: Enricher) -> None:
        self.settings = settings
        self.enricher = enricher
        self.writer = EventWriter(client, session_timeout_seconds=settings.session_timeout_seconds)
        self.key_limit = Limit(capacity=settings.ingest_rate_per_key_per_second * settings.ingest_burst_seconds,
                               per_second=settings.ingest_rate_per_key_per_second)
        self.counted = Series(INGEST_EVENTS)  # (format, outcome): events

    def read_body(self, req: falcon.Request) -> bytes:
        limit = self.settings.max_body_bytes
        body = read_bounded(req, limit)
        encoding = (req.get_header("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, limit + 1)
            except zlib.error:
                raise ApiError(400, "invalid_gzip", "the body is not valid gzip") from None
            if len(body) > limit or inflater.unconsumed_tail:
                raise too_large("the uncompressed body", limit)
        elif encoding not in ("", "identity"):
            raise ApiError(415, "unsupported_encoding", "Content-Encoding may be gzip or none")
        if not body.strip():
            raise ApiError(400, "invalid_json", "the request body is empty")
        return body

    def accept(self, key: KeyRecord, items: Items, build, request: RequestInfo) -> Outcome:
        """Validates every item, then writes the valid ones in one XADD. `build(raw)` decodes one
        item into `wire.AsIncoming` (raising msgspec errors or Rejected)."""
        if len(items.raws) > self.settings.ingest_max_batch:
            raise too_large("a batch", self.settings.ingest_max_batch)
        if not items.raws:
            raise ApiError(400, "empty_batch", "the request has no events")
        events: list[Event] = []
        indexes: list[int] = []
        rejected: list[dict] = []
        max_depth = self.settings.max_json_depth
        for index, raw in enumerate(items.raws):
            try:
                if len(raw) > self.settings.ingest_max_event_bytes:
                    raise Rejected(f"the event is larger than {self.settings.ingest_max_event_bytes} bytes")
                if nests_deeper_than(raw, max_depth):
                    raise Rejected(f"the event nests objects and arrays more than {max_depth} levels deep")
                events.append(self.enricher.build(build(raw), request))
                indexes.append(index)
            except (Rejected, msgspec.ValidationError, msgspec.DecodeError) as problem:
                rejected.append({"index": index, "reason": str(problem)})
        try:
            return self.write_accepted(key, events, rejected, request, items.wire_format)
        except OverflowError:  # nothing was written: refuse the events that cannot be encoded, write the rest
            keep = [encodable(event) for event in events]
            rejected += [{"index": index, "reason": "a number is outside the 64-bit integer range"}
                         for index, ok in zip(indexes, keep) if not ok]
            rejected.sort(key=lambda problem: problem["index"])
            return self.write_accepted(key, [event for event, ok in zip(events, keep) if ok], rejected, request,
                                       items.wire_format)

    def write_accepted(self, key: KeyRecord, events: list[Event], rejected: list[dict], request: RequestInfo,
                       wire_format: str) -> Outcome:
        """Writes the events (raising what `write` raises) and counts them, and the rejected, in the metrics."""
        if not events:
            self.counted[wire_format, "rejected"].inc(len(rejected))
            raise ApiError(400, "no_valid_events", "no event in the request is valid", details={"rejected": rejected})
        self.write(events, request, rate_subject=key.public_id)
        self.counted[wire_format, "accepted"].inc(len(events))
        if rejected:
            self.counted[wire_format, "rejected"].inc(len(rejected))
        return Outcome(accepted=len(events), rejected=rejected)

    def write(self, events: list[Event], request: RequestInfo, *, rate_subject: str) -> None:
        """One atomic Redis call: the rate limit of `rate_subject` (429 if over), session ids, the XADD."""
        shard = shard_for(request.company_id, self.settings.stream_shards)
        decision = self.writer.write(stream_key(shard), request.company_id, events, request.request_id,
                                     bucket=redis_keys.rate_limit_bucket("ingest", rate_subject), limit=self.key_limit)
        if not decision.allowed:
            raise too_many_requests(decision.retry_after, "this key is over its event rate; retry later")


def encodable(event: Event) -> bool:
    """Whether the event fits the stream encoding (JSON numbers must be 64-bit integers there)."""
    try:
        encode_events([event])
    except OverflowError:
        return False
    return True


class _NativeObject(wire.NativeBatch, kw_only=True):
    """A native body that is an object: a batch, or one event (no "batch"), read in one pass."""

    batch: list[msgspec.Raw] | None = None


_native_array = msgspec.json.Decoder(list[msgspec.Raw])
_native_object = msgspec.json.Decoder(_NativeObject)


def split_native(body: bytes) -> Items:
    """One event, an array, or {"batch": [...], "sent_at": ..., "write_key": ...}."""
    first = body.lstrip()[:1]
    if first == b"[":
        return Items(_native_array.decode(body), "native")
    if first != b"{":
        raise ApiError(400, "invalid_json", "the body must be a JSON object or array")
    envelope = _native_object.decode(body)
    if envelope.batch is None:
        return Items([body], "native")
    return Items(envelope.batch, "native", sent_at=envelope.sent_at, write_key=envelope.write_key)


def split_segment(body: bytes, *, batched: bool) -> Items:
    if batched:
        batch = msgspec.json.decode(body, type=wire.SegmentBatch)
        return Items(batch.batch, "segment", sent_at=batch.sent_at, write_key=batch.write_key, context=batch.context)
    message = msgspec.json.decode(body, type=wire.SegmentMessage)
    return Items([body], "segment", write_key=message.write_key)


def split_legacy(body: bytes) -> Items:
    if body.lstrip()[:1] == b"[":
        return Items(msgspec.json.decode(body, type=list[msgspec.Raw]), "legacy")
    return Items([msgspec.json.decode(body, type=msgspec.Raw)], "legacy")
