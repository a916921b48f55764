"""Helpers for ingest tests: a company with a write key, and the events that reached the streams."""

from __future__ import annotations

from dataclasses import dataclass

from models.redis_streams import decode_entry, stream_key

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@dataclass
class Tenant:
    company_id: str
    write_key: str
    read_key: str
    owner: object


def tenant(api) -> Tenant:
    owner = api.user()
    company_id = api.company(owner)
    return Tenant(
        company_id, api.key(owner, company_id, "write")["key"], api.key(owner, company_id, "read")["key"], owner
    )


def streamed(redis_client, settings) -> list:
    """Every event in every shard's stream, oldest first."""
    events = []
    for shard in range(settings.stream_shards):
        for _, fields in redis_client.xrange(stream_key(shard)):
            events.extend(decode_entry(fields))
    return events
