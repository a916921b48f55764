"""Actor `verify_chain`: one verification round of a configured chain (chain/verify.py). The scheduler
enqueues it for every chain of CHAIN_RPC_URLS each CHAIN_POLL_SECONDS; a lease keeps rounds of one
chain from overlapping. When no endpoint answers, the chain's rounds back off (CHAIN_POLL_SECONDS x
2^failures, at most CHAIN_MAX_BACKOFF_SECONDS): ingest and persistence never wait for a chain."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import redis

from adtivity.jobs import VERIFY_CHAIN
from adtivity.lease import Lease
from adtivity.logs import log_event
from adtivity.settings import Settings
from chain.rpc import ChainRpc, ChainUnavailable
from chain.verify import verify_chain as verify_round
from models import redis_keys
from models.events_table import unix_seconds
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)
ROUND_SECONDS = 5 * 60


def run_round(
    settings: Settings, client: redis.Redis, clickhouse, chain_id: str, *, now: dt.datetime
) -> dict[str, object] | None:
    """A round unless one is running or the chain is backing off; what it did, or None."""
    endpoints = settings.chain_rpc.get(chain_id)
    moment = unix_seconds(now)
    backoff = json.loads(client.get(redis_keys.chain_backoff(chain_id)) or '{"failures": 0, "until": 0}')
    if not endpoints or moment < backoff["until"]:
        return None
    lease = Lease(client, redis_keys.chain_lease(chain_id), ttl_seconds=ROUND_SECONDS)
    if not lease.acquire():
        return None
    rpc = ChainRpc(
        chain_id, endpoints, timeout=settings.chain_rpc_timeout_seconds, batch_size=settings.chain_batch_size
    )
    try:
        result = verify_round(settings, rpc, clickhouse, now=now)
    except ChainUnavailable as error:
        failures = backoff["failures"] + 1
        wait = min(settings.chain_poll_seconds * 2 ** (failures - 1), settings.chain_max_backoff_seconds)
        client.set(
            redis_keys.chain_backoff(chain_id),
            json.dumps({"failures": failures, "until": moment + wait}),
            ex=2 * settings.chain_max_backoff_seconds,
        )
        log_event(log, "chain unavailable", level=logging.WARNING, chain=chain_id, retry_in=wait, error=str(error))
        return None
    finally:
        lease.release()
    client.delete(redis_keys.chain_backoff(chain_id))
    done = {**dataclasses.asdict(result), "chain": chain_id, "calls": sum(rpc.calls.values())}
    log_event(log, "verification round done", **done)  # type: ignore[arg-type]
    return done


@actor(VERIFY_CHAIN, max_retries=0, time_limit=ROUND_SECONDS * 1000)
def verify_chain(chain_id: str) -> None:
    runtime = current()
    run_round(
        runtime.settings,
        runtime.redis(10),
        runtime.clickhouse(60).get(),
        chain_id,
        now=dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )
