"""The Redis key layout: every key and channel name the system uses, built here and nowhere else.

Keys that one Lua script or transaction touches together share a hash tag (the part in `{...}`), so
they sit in one slot of a Redis Cluster: a stream shard's keys carry `{<shard>}` (its two streams,
hand-over set, failure counts, lease, de-duplication filter, and the session state and ingest rate
buckets of the companies it carries); a company's analytics cache carries `{<company id>}`.
"""

from __future__ import annotations

PREFIX = "adt"

# Pub/sub channel: an API key's public id is published here when it is revoked or its company deleted.
KEY_INVALIDATION_CHANNEL = f"{PREFIX}:keys:invalidate"
# The scheduler's latest health check (JSON).
HEALTH_STATUS = f"{PREFIX}:health"


def shard_tag(shard: int) -> str:
    """The hash tag of a stream shard's keys."""
    return f"{{{shard}}}"


def rate_limit_bucket(scope: str, subject: str) -> str:
    """Token bucket state for one limited subject, e.g. ("login-ip", "10.0.0.1")."""
    return f"{PREFIX}:rl:{scope}:{subject}"


def ingest_bucket(shard: int, subject: str) -> str:
    """An API key's ingest rate bucket, beside the stream shard its company writes to (the ingest
    script takes tokens and appends in one call)."""
    return f"{PREFIX}:rl:ingest:{shard_tag(shard)}:{subject}"


def process_heartbeat(process: str) -> str:
    """Seconds-since-epoch of the last sign of life of a long-running process (worker, streams, scheduler)."""
    return f"{PREFIX}:heartbeat:{process}"


def session_state(shard: int, company_id: str, identity: str) -> str:
    """The current derived session of one identity: its id and the time of its last event. Beside
    the stream shard of its company (the ingest script reads and writes it with the XADD)."""
    return f"{PREFIX}:sess:{shard_tag(shard)}:{company_id}:{identity}"


def pump_lease(kind: str, shard: int) -> str:
    """Held by the one pump of a kind ("persist", "entities") working on a stream shard, or by the
    one streams process bridging it ("realtime")."""
    return f"{PREFIX}:lease:{kind}:{shard_tag(shard)}"


def pump_queued(kind: str, shard: int) -> str:
    """Set (with a TTL) when the scheduler enqueued a pump for a shard, so it does not enqueue piles."""
    return f"{PREFIX}:queued:{kind}:{shard}"


def pump_failures(stream: str, group: str) -> str:
    """Hash of entry id -> how many times storing it failed (not deliveries), for the quarantine rule."""
    return f"{PREFIX}:failures:{stream}:{group}"


def handed_over(shard: int) -> str:
    """Set of the events-stream entries of a shard handed to the entities stream but not yet
    acknowledged: a redelivered entry found here is not handed over a second time."""
    return f"{PREFIX}:handed:{shard_tag(shard)}"


def realtime_snapshot(company_id: str) -> str:
    """A company's latest real-time snapshot (JSON), published by the streams app."""
    return f"{PREFIX}:rt:{company_id}"


def query_answer(company_id: str, query_digest: str) -> str:
    """A cached answer of the query API or an analytics endpoint (queries/cache.py): the rollup version
    it was computed from, a newline, the Unix time it is fresh until, a newline, the JSON."""
    return f"{PREFIX}:qa:{{{company_id}}}:{query_digest}"


def query_refresh(company_id: str, query_digest: str) -> str:
    """Held (SET NX, with an expiry) by the one request recomputing a stale query answer; the others
    answer the stale one meanwhile."""
    return f"{PREFIX}:qr:{{{company_id}}}:{query_digest}"


def rollup_version(company_id: str) -> str:
    """When the company's rollups were last computed (set by each rollup run): cached answers of
    another version are stale."""
    return f"{PREFIX}:rollup-version:{{{company_id}}}"


# Seconds since the epoch up to which every accepted event is counted in the real-time snapshots.
REALTIME_AS_OF = f"{PREFIX}:rt:as-of"

# Sorted set of the streams processes running the real-time bridge, by when each was last seen.
BRIDGES = f"{PREFIX}:bridges"

# Held by the scheduler replica that schedules; its value starts with "<host>:<pid>:".
SCHEDULER_LEADER = f"{PREFIX}:lease:scheduler"


def dedup_meta(shard: int) -> str:
    """Hash describing a shard's de-duplication filter (dedup/filter.py): its shape, when it was born,
    the journal's length and trimmed prefix, each snapshot's journal position, and since when it holds
    every id stored (after a rebuild)."""
    return f"{PREFIX}:dedup:{shard_tag(shard)}:meta"


def dedup_journal(shard: int) -> str:
    """List of the id hashes added to a shard's de-duplication filter since its snapshots."""
    return f"{PREFIX}:dedup:{shard_tag(shard)}:journal"


def dedup_snapshot(shard: int, generation: int) -> str:
    """One generation of a shard's de-duplication filter as of a journal position: 512-bit blocks."""
    return f"{PREFIX}:dedup:{shard_tag(shard)}:snap:{generation}"


def dedup_staging(shard: int, generation: int, writer: str) -> str:
    """Where a writer ("pump" or "rebuild") uploads a generation's bitmap before it replaces (or is
    OR-ed into) the snapshot; one key a writer, so a pump and a rebuild never mix their uploads."""
    return f"{PREFIX}:dedup:{shard_tag(shard)}:staging:{writer}:{generation}"


def chain_lease(chain_id: str) -> str:
    """Held by the worker running a chain's verification round (one at a time per chain)."""
    return f"{PREFIX}:chain:{chain_id}:lease"


def chain_backoff(chain_id: str) -> str:
    """While a chain's endpoints are failing: JSON {"failures": in a row, "until": Unix time before
    which its rounds wait}; deleted by the next round that succeeds."""
    return f"{PREFIX}:chain:{chain_id}:backoff"
