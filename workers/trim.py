"""Actor `trim_streams`: trims each event stream (and entities stream) below the lowest entry that some consumer group has
not acknowledged yet, so no group ever loses an entry it still needs."""

from __future__ import annotations

import redis

from adtivity.jobs import TRIM_STREAMS
from adtivity.settings import Settings
from models.redis_streams import all_streams, entry_id_parts
from workers.actor import actor
from workers.runtime import current


def safe_trim_point(client: redis.Redis, stream: str) -> str | None:
    """The lowest id any group still needs (its oldest pending entry, or the entry after its last
    delivered one); None if the stream or its groups do not exist."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    if not groups:
        return None
    needed = []
    for group in groups:
        summary = client.xpending(stream, group["name"])
        if summary["pending"]:
            needed.append(entry_id_parts(summary["min"]))
        else:
            milliseconds, sequence = entry_id_parts(group["last-delivered-id"])
            needed.append((milliseconds, sequence + 1))
    milliseconds, sequence = min(needed)
    return f"{milliseconds}-{sequence}"


def trim_all(settings: Settings, client: redis.Redis) -> dict[str, int]:
    trimmed = {}
    for stream in all_streams(settings.stream_shards):
        point = safe_trim_point(client, stream)
        if point is not None:
            trimmed[stream] = client.xtrim(stream, minid=point, approximate=False)
    return trimmed


@actor(TRIM_STREAMS, max_retries=3, time_limit=60_000)
def trim_streams() -> None:
    runtime = current()
    trim_all(runtime.settings, runtime.redis(10))
