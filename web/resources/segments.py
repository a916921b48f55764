"""`/v1/companies/{id}/segments`: saved segments (queries/segments.py). Members create, replace and
delete them; any member or a read key reads them, and a segment's size over time (its people active
in each day, or hour, week or month, of a date range), from the query engine."""

from __future__ import annotations

import falcon
import msgspec

from adtivity.errors import Unprocessable
from queries import segments
from queries.engine import QueryEngine
from web import schemas
from web.bodies import given_fields
from web.principals import company_access, company_id_access


class Segments:
    POST_SCHEMA = schemas.SegmentBody

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        """The company's segments, oldest first."""
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        resp.media = {"items": [segments.describe(s) for s in segments.list_segments(company)]}

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        """Saves a rule or a static list (user ids or wallets, as a JSON list or CSV text)."""
        access = company_access(req, company_id, min_role="member")
        segment = segments.create_segment(
            access.company.id,
            given_fields(req.context.body),
            self.engine.settings,
            self.engine.clock(),
            access.user.id if access.user else None,
        )
        resp.status = falcon.HTTP_201
        resp.media = segments.describe(segment)


class SegmentItem:
    PUT_SCHEMA = schemas.SegmentBody

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, segment_id: str) -> None:
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        resp.media = segments.describe(segments.company_segment(company, segment_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, company_id: str, segment_id: str) -> None:
        """Replaces the segment's name and definition."""
        access = company_access(req, company_id, min_role="member")
        segment = segments.replace_segment(
            access.company.id, segment_id, given_fields(req.context.body), self.engine.settings, self.engine.clock()
        )
        resp.media = segments.describe(segment)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str, segment_id: str) -> None:
        access = company_access(req, company_id, min_role="member")
        segments.delete_segment(access.company.id, segment_id)
        resp.status = falcon.HTTP_204


class SegmentSize:
    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, segment_id: str) -> None:
        """The segment's people active over `date_range` (default 30d) in all, and per `interval`."""
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        segments.company_segment(company, segment_id)
        asked = {
            "metrics": ["users"],
            "date_range": req.get_param("date_range") or "30d",
            "timezone": req.get_param("timezone") or "UTC",
            "filters": [["in_segment", segment_id]],
        }
        if isinstance(asked["date_range"], str) and "," in asked["date_range"]:
            asked["date_range"] = asked["date_range"].split(",", 1)
        total = msgspec.json.decode(self.engine.answer(str(company), asked))
        interval = req.get_param("interval") or "day"
        if interval not in ("hour", "day", "week", "month"):
            raise Unprocessable(
                "invalid_query", "interval: must be hour, day, week or month", details={"part": "interval"}
            )
        series = msgspec.json.decode(
            self.engine.answer(str(company), {**asked, "dimensions": [f"time:{interval}"], "limit": 1000})
        )
        resp.media = {
            "segment_id": segment_id,
            "from": total["from"],
            "to": total["to"],
            "timezone": total["timezone"],
            "people": total["results"][0]["metrics"][0],
            "interval": interval,
            "points": [{"time": row["dimensions"][0], "people": row["metrics"][0]} for row in series["results"]],
        }
