"""`POST /v1/companies/{id}/query`: any metric by any dimension, with filters and segments
(queries/engine.py). Any member or a read key may ask; `Accept: text/csv` answers the rows as CSV."""

from __future__ import annotations

import falcon
import msgspec

from queries.engine import QueryEngine
from web import schemas
from web.principals import company_id_access
from web.tables import CSV, query_csv, wants_csv


def query_body(body: schemas.QueryRequest) -> dict:
    """The decoded body as the engine reads it (an order left out takes the engine's default)."""
    fields = msgspec.structs.asdict(body)
    if fields["order_by"] is None:
        del fields["order_by"]
    return fields


class Query:
    POST_SCHEMA = schemas.QueryRequest

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        """Metrics by dimensions over a date range, narrowed by filters and segments (Plausible Stats API v2 shape)."""
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        answer = self.engine.answer(str(company), query_body(req.context.body))
        if wants_csv(req):
            resp.content_type = CSV
            resp.text = query_csv(msgspec.json.decode(answer))
        else:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = answer
