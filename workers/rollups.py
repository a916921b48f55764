"""Actors `rollup_all` and `rollup_company`: keep every live company's rollups current (the work is
rollups/compute.py). The scheduler enqueues `rollup_all` every ROLLUP_EVERY_SECONDS; it enqueues
`rollup_company` for each live company with events since the trailing window began, and records the
others' rollups as current."""

from __future__ import annotations

import datetime as dt
import uuid

from adtivity.jobs import ROLLUP_ALL, ROLLUP_COMPANY
from rollups.compute import companies_to_roll_up, rollup_company_now
from workers.actor import actor
from workers.runtime import current


def clickhouse_clients():
    runtime = current()
    return runtime.clickhouse(runtime.settings.rollup_query_timeout_seconds + 10)


@actor(ROLLUP_ALL, max_retries=3, time_limit=5 * 60_000)
def rollup_all() -> None:
    runtime = current()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for company_id in companies_to_roll_up(runtime.settings, runtime.redis(10), clickhouse_clients().get(), now=now):
        runtime.enqueue(ROLLUP_COMPANY, company_id)


@actor(ROLLUP_COMPANY, max_retries=5, min_backoff=10_000, time_limit=10 * 60_000)
def rollup_company(company_id: str) -> None:
    runtime = current()
    rollup_company_now(runtime.settings, runtime.redis(10), clickhouse_clients().get(), str(uuid.UUID(company_id)))
