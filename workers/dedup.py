"""Actor `rebuild_dedup`: rebuilds, from ClickHouse, every shard's de-duplication filter that does not
cover a whole window (made anew after Redis lost it or restarted, or new on a store that has events),
once it is DEDUP_SETTLE_SECONDS old. The scheduler enqueues it every DEDUP_CHECK_SECONDS, so the
exact look-up that stands in meanwhile lasts minutes, not a window (dedup/rebuild.py)."""

from __future__ import annotations

import logging

from adtivity.jobs import REBUILD_DEDUP
from adtivity.logs import log_event
from dedup.rebuild import Rebuild
from models.clickhouse import clickhouse_client
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)


@actor(REBUILD_DEDUP, max_retries=0, time_limit=60 * 60_000)
def rebuild_dedup() -> None:
    runtime = current()
    rebuild = Rebuild(
        runtime.settings, runtime.redis(60), clickhouse_client(runtime.settings.clickhouse_url, timeout=600)
    )
    for shard in rebuild.needed():
        ids, kept = rebuild.rebuild_shard(shard, None, progress=False)
        log_event(log, "dedup filter rebuilt" if kept else "dedup filter lost during its rebuild", shard=shard, ids=ids)
