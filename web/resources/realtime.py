"""`GET /v1/companies/{id}/realtime`: the company's latest real-time snapshot, published by the
streams app to Redis, with `as_of` and `stale` (true when the snapshots are older than
REALTIME_STALE_SECONDS, e.g. while the streams process is down) instead of silently old numbers."""

from __future__ import annotations

import datetime as dt
import time

import falcon
import msgspec
import redis

from adtivity.settings import Settings
from models import realtime, redis_keys
from models.redis_client import get_many
from web.principals import company_id_access


class Realtime:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        company = str(company_id_access(req, company_id, min_role="viewer", read_key=True))
        as_of, stored = get_many(self.redis, [redis_keys.REALTIME_AS_OF, redis_keys.realtime_snapshot(company)])
        now = time.time()
        moment = float(as_of) if as_of else None
        view = (
            msgspec.json.decode(stored)
            if stored
            else realtime.snapshot({}, None, now=moment or now, lg_k=self.settings.realtime_hll_lg_k)
        )
        resp.media = {
            "company_id": company,
            "as_of": dt.datetime.fromtimestamp(moment, dt.UTC).isoformat() if moment else None,
            "stale": moment is None or now - moment > self.settings.realtime_stale_seconds,
            **view,
        }
