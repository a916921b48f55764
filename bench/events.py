"""Realistic event batches for the benchmarks: web2 and web3 events of about 400 bytes each, as an
SDK sends them (`batch`) or as ingest writes them to the streams (`enriched_batches`)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator

PAGES = ["/", "/pricing", "/docs/getting-started", "/blog/launch", "/app/dashboard", "/checkout"]
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
]


def event(rng: random.Random, *, with_message_id: bool = True) -> dict:
    user = f"user-{rng.randrange(5000)}"
    anon = f"anon-{rng.randrange(20000):08d}"
    page = rng.choice(PAGES)
    base = {
        "anonymous_id": anon,
        "context": {
            "userAgent": rng.choice(AGENTS),
            "locale": "en-US",
            "page": {
                "url": f"https://shop.example.com{page}?utm_source=newsletter&utm_medium=email",
                "path": page,
                "referrer": "https://www.google.com/",
            },
        },
    }
    if with_message_id:
        base["message_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
    kind = rng.random()
    if kind < 0.45:
        return {**base, "type": "page", "properties": {"title": page.strip("/") or "home"}}
    if kind < 0.75:
        return {
            **base,
            "type": "track",
            "name": rng.choice(["Signup", "Add To Cart", "Search"]),
            "user_id": user,
            "properties": {"plan": "pro", "value": rng.randrange(100)},
        }
    if kind < 0.85:
        return {
            **base,
            "type": "wallet_connect",
            "user_id": user,
            "chain_id": rng.choice([1, 137, 8453]),
            "wallet_address": "0x" + f"{rng.getrandbits(160):040x}",
        }
    if kind < 0.95:
        return {
            **base,
            "type": "transaction",
            "user_id": user,
            "chain_id": 1,
            "status": "confirmed",
            "tx_hash": "0x" + f"{rng.getrandbits(256):064x}",
            "value": str(rng.randrange(10**18)),
            "token": "ETH",
        }
    return {
        **base,
        "type": "payment",
        "user_id": user,
        "payment_id": f"pay_{rng.randrange(10**6)}",
        "status": "completed",
        "amount": "49.00",
        "currency": "USD",
        "method": "card",
    }


def batch(rng: random.Random, size: int = 50, *, with_message_id: bool = True) -> list[dict]:
    return [event(rng, with_message_id=with_message_id) for _ in range(size)]


def steady_load(url: str, key: str, events_per_second: int, stop) -> None:
    """Posts batches of 50 to `url` at `events_per_second` until `stop` (a threading.Event) is set."""
    import time

    import requests

    rng = random.Random(5)
    session = requests.Session()
    interval = 50 / events_per_second
    next_at = time.monotonic()
    while not stop.is_set():
        session.post(url, json=batch(rng), headers={"Authorization": f"Bearer {key}"}, timeout=10)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def enriched_batches(settings, rng: random.Random, companies: list[str], events: int) -> Iterator[tuple[str, list]]:
    """(company, enriched events) in batches of 50, `events` in all, built by the real ingest
    enricher as a request now would be, each with its session id."""
    import msgspec

    from ingest import wire
    from ingest.enrich import Enricher, RequestInfo

    enricher = Enricher(settings)
    made = 0
    while made < events:
        company = rng.choice(companies)
        request = RequestInfo(
            company_id=company,
            received_at=dt.datetime.now(dt.UTC),
            sent_at=None,
            user_agent="",
            ip="203.0.113.9",
            country="",
            request_id="bench",
        )
        built = [enricher.build(msgspec.convert(raw, wire.NativeEvent), request) for raw in batch(rng)]
        for event in built:
            event.session_id = event.session_id or f"s-{event.identity}"
        made += len(built)
        yield company, built
