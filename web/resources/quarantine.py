"""`/v1/companies/{id}/quarantine`: events the workers could not persist, with the reason, and
`POST .../quarantine/replay` to send them through the pipeline again (admins)."""

from __future__ import annotations

import falcon
import redis

from accounts.audit import audit
from adtivity.replay import replay_quarantined
from adtivity.settings import Settings
from models.tracking import Quarantine
from web.pagination import paginate
from web.principals import client_ip, company_access


def quarantine_out(row: Quarantine) -> dict:
    return {
        "id": row.id,
        "entry_id": row.entry_id,
        "events": row.events,
        "reason": row.reason,
        "created_at": row.created_at,
        "replayed_at": row.replayed_at,
    }


class QuarantineList:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        query = Quarantine.select().where(Quarantine.company_id == access.company.id)
        if not req.get_param_as_bool("include_replayed", default=False):
            query = query.where(Quarantine.replayed_at.is_null())
        rows, cursor = paginate(
            req, self.settings, query, Quarantine.created_at, Quarantine.id, key=lambda q: (q.created_at, q.id)
        )
        resp.media = {"items": [quarantine_out(q) for q in rows], "next_cursor": cursor}


class QuarantineReplay:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="admin")
        entries, events = replay_quarantined(self.redis, access.company.id)
        audit(
            "quarantine.replayed",
            actor_id=access.user.id,
            company_id=access.company.id,
            target=str(entries),
            ip=client_ip(req),
        )
        resp.status = falcon.HTTP_202
        resp.media = {"entries": entries, "events": events}
