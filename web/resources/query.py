"""`POST /v1/companies/{id}/query`: any metric by any dimension, with filters and segments
(queries/engine.py). Any member or a read key may ask; `Accept: text/csv` answers the rows as CSV."""

from __future__ import annotations

import falcon

from queries.engine import QueryEngine
from web import schemas
from web.bodies import given_fields
from web.principals import company_id_access
from web.tables import query_csv, reply


class Query:
    POST_SCHEMA = schemas.QueryRequest

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    def on_post(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        """Metrics by dimensions over a date range, narrowed by filters and segments (Plausible Stats API v2 shape)."""
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        reply(req, resp, self.engine.answer(str(company), given_fields(req.context.body)), query_csv)
