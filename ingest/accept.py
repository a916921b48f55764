"""The accept path, the same for every wire format and for the CLI's import: the body's encoding and
limits, cutting it into items, per-event checks (size, depth), enrichment, the rate limit and the one
XADD that makes a request's events durable. Each rejected event is reported by index without failing
the others; a request refused whole raises a domain error (adtivity/errors.py)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import redis
from prometheus_client import Counter

from adtivity.errors import InvalidInput, RateLimited, TooLarge, Unprocessable, UnsupportedEncoding
from adtivity.jsontext import nests_deeper_than, too_deep
from adtivity.metric_series import Series
from adtivity.ratelimit import Limit
from adtivity.settings import Settings
from ingest.enrich import Enricher, Rejected, RequestInfo
from ingest.formats import Items
from ingest.wire import AsIncoming
from ingest.write import EventWriter
from models import redis_keys
from models.events import Event
from models.redis_streams import encode_events, shard_for

INGEST_EVENTS = Counter(
    "adtivity_ingest_events_total",
    "Events ingest accepted or rejected one by one (a request "
    "refused whole, 401/413/429/503, counts only in adtivity_http_requests_total)",
    ["format", "outcome"],
)


@dataclass(frozen=True)
class Outcome:
    accepted: int
    rejected: list[dict[str, Any]]


class NoValidEvents(InvalidInput):
    """Every event of the request was rejected; `rejected` says why, by index."""

    def __init__(self, rejected: list[dict[str, Any]]) -> None:
        super().__init__("no_valid_events", "no event in the request is valid", details={"rejected": rejected})
        self.rejected = rejected


def too_large(what: str, limit: int) -> TooLarge:
    return TooLarge("payload_too_large", f"{what} may be at most {limit}")


def decoded_body(body: bytes, content_encoding: str, limit: int) -> bytes:
    """The body as JSON text: gzip inflated (at most `limit` bytes), anything else refused."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise InvalidInput("invalid_gzip", "the body is not valid gzip") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise too_large("the uncompressed body", limit)
        if not inflater.eof:  # cut short: no trailer, so neither its checksum nor its length was checked
            raise InvalidInput("invalid_gzip", "the gzip body is truncated")
    elif encoding not in ("", "identity"):
        raise UnsupportedEncoding("unsupported_encoding", "Content-Encoding may be gzip or none")
    if not body.strip():
        raise InvalidInput("invalid_json", "the request body is empty")
    return body


def split_body(split: Callable[[bytes], Items], body: bytes, max_depth: int) -> Items:
    """The body cut into items. Its events' depth is checked one by one (accept), so a deep one fails
    alone; a body too deep to decode at all (Python's recursion limit) is refused whole."""
    try:
        return split(body)
    except msgspec.ValidationError as error:
        raise Unprocessable("invalid_body", str(error)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for bad bytes in a string
        raise InvalidInput("invalid_json", "the request body is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise too_deep(max_depth) from None


Build = Callable[[bytes], AsIncoming]


class IngestPipeline:
    def __init__(self, settings: Settings, client: redis.Redis, enricher: Enricher) -> None:
        self.settings = settings
        self.enricher = enricher
        self.writer = EventWriter(client, session_timeout_seconds=settings.session_timeout_seconds)
        self.key_limit = Limit(
            capacity=settings.ingest_rate_per_key_per_second * settings.ingest_burst_seconds,
            per_second=settings.ingest_rate_per_key_per_second,
        )
        self.counted = Series(INGEST_EVENTS)  # (format, outcome): events

    def accept(self, rate_subject: str, items: Items, build: Build, request: RequestInfo) -> Outcome:
        """Validates every item, then writes the valid ones in one XADD, within `rate_subject`'s
        event rate (a key's public id). `build(raw)` decodes one item (raising msgspec errors or
        Rejected)."""
        if len(items.raws) > self.settings.ingest_max_batch:
            raise too_large("a batch", self.settings.ingest_max_batch)
        if not items.raws:
            raise InvalidInput("empty_batch", "the request has no events")
        events: list[Event] = []
        indexes: list[int] = []
        rejected: list[dict[str, Any]] = []
        for index, raw in enumerate(items.raws):
            try:
                self.check_size_and_depth(raw)
                events.append(self.enricher.build(build(raw), request))
                indexes.append(index)
            except (Rejected, msgspec.ValidationError, msgspec.DecodeError) as problem:
                rejected.append({"index": index, "reason": str(problem)})
            except UnicodeDecodeError:  # msgspec's error for bad bytes inside a string
                rejected.append({"index": index, "reason": "the event is not valid UTF-8"})
        try:
            return self.write_accepted(rate_subject, events, rejected, request, items.wire_format)
        except OverflowError:  # nothing was written: refuse the events that cannot be encoded, write the rest
            keep = [encodable(event) for event in events]
            rejected += [
                {"index": index, "reason": "a number is outside the 64-bit integer range"}
                for index, ok in zip(indexes, keep, strict=False)
                if not ok
            ]
            rejected.sort(key=lambda problem: problem["index"])
            return self.write_accepted(
                rate_subject,
                [event for event, ok in zip(events, keep, strict=False) if ok],
                rejected,
                request,
                items.wire_format,
            )

    def check_size_and_depth(self, raw: bytes) -> None:
        max_bytes, max_depth = self.settings.ingest_max_event_bytes, self.settings.max_json_depth
        if len(raw) > max_bytes:
            raise Rejected(f"the event is larger than {max_bytes} bytes")
        if nests_deeper_than(raw, max_depth):
            raise Rejected(f"the event nests objects and arrays more than {max_depth} levels deep")

    def write_accepted(
        self,
        rate_subject: str,
        events: list[Event],
        rejected: list[dict[str, Any]],
        request: RequestInfo,
        wire_format: str,
    ) -> Outcome:
        """Writes the events (raising what `write` raises) and counts them, and the rejected, in the metrics."""
        if not events:
            self.counted[wire_format, "rejected"].inc(len(rejected))
            raise NoValidEvents(rejected)
        self.write(events, request, rate_subject=rate_subject)
        self.counted[wire_format, "accepted"].inc(len(events))
        if rejected:
            self.counted[wire_format, "rejected"].inc(len(rejected))
        return Outcome(accepted=len(events), rejected=rejected)

    def write(self, events: list[Event], request: RequestInfo, *, rate_subject: str) -> None:
        """One atomic Redis call: the rate limit of `rate_subject` (RateLimited if over), session ids, the XADD."""
        shard = shard_for(request.company_id, self.settings.stream_shards)
        decision = self.writer.write(
            shard,
            request.company_id,
            events,
            request.request_id,
            bucket=redis_keys.ingest_bucket(shard, rate_subject),
            limit=self.key_limit,
        )
        if not decision.allowed:
            raise RateLimited(decision.retry_after, "this key is over its event rate; retry later")


def encodable(event: Event) -> bool:
    """Whether the event fits the stream encoding (JSON numbers must be 64-bit integers there)."""
    try:
        encode_events([event])
    except OverflowError:
        return False
    return True
