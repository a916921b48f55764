"""`GET /v1/companies/{id}/events`: raw events from ClickHouse, newest first, with cursor pagination
and filters. Always scoped to the caller's company, capped at EVENTS_PAGE_MAX rows, with a query timeout."""

from __future__ import annotations

import datetime as dt

import falcon
import msgspec

from adtivity.settings import Settings
from models.clickhouse import ClientPool
from web.errors import ApiError
from web.moments import EARLIEST, LATEST, naive_utc
from web.pagination import decode_cursor, encode_cursor
from web.principals import company_access

COLUMNS = (
    "message_id",
    "type",
    "name",
    "event_time",
    "received_at",
    "user_id",
    "anonymous_id",
    "session_id",
    "properties",
    "traits",
    "page_url",
    "page_path",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "browser",
    "os",
    "device",
    "country",
    "is_bot",
    "wallet_address",
    "chain_id",
    "tx_hash",
    "contract_address",
    "tx_value",
    "token",
    "status",
    "payment_id",
    "amount",
    "currency",
)
JSON_COLUMNS = ("properties", "traits")


def parse_time(req: falcon.Request, name: str) -> dt.datetime | None:
    value = req.get_param(name)
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO 8601 time") from None
    converted = naive_utc(moment)
    if converted is None:
        raise ApiError(
            400, "invalid_parameter", f"{name} must fall between {EARLIEST.year} and {LATEST.year}"
        ) from None
    return converted


class Events:
    def __init__(self, settings: Settings, clickhouse: ClientPool) -> None:
        self.settings = settings
        self.clickhouse = clickhouse

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        access = company_access(req, company_id, min_role="viewer", read_key=True)
        limit = req.get_param_as_int("limit", min_value=1, max_value=self.settings.events_page_max) or 100
        where = ["company_id = toUUID(%(company)s)"]
        params: dict = {"company": str(access.company.id), "limit": limit + 1}
        for param, column in (
            ("type", "type"),
            ("name", "name"),
            ("wallet", "wallet_address"),
            ("session", "session_id"),
        ):
            value = req.get_param(param)
            if value:
                where.append(f"{column} = %({param})s")
                params[param] = value.lower() if param == "wallet" and value.startswith("0x") else value
        user = req.get_param("user")
        if user:
            where.append("(user_id = %(user)s OR anonymous_id = %(user)s)")
            params["user"] = user
        since, until = parse_time(req, "since"), parse_time(req, "until")
        if since:
            where.append("event_time >= toDateTime(%(since)s)")
            params["since"] = since
        if until:
            where.append("event_time < toDateTime(%(until)s)")
            params["until"] = until
        cursor = req.get_param("cursor")
        if cursor:
            params["after_time"], params["after_id"] = decode_cursor(cursor, str)
            where.append(
                "(event_time < toDateTime(%(after_time)s) OR "
                "(event_time = toDateTime(%(after_time)s) AND message_id < %(after_id)s))"
            )
        query = (
            f"SELECT {', '.join(COLUMNS)} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY event_time DESC, message_id DESC LIMIT %(limit)s"
        )
        with self.clickhouse.client() as client:
            result = client.query(
                query, parameters=params, settings={"max_execution_time": self.settings.query_timeout_seconds}
            )
        rows = [dict(zip(COLUMNS, row, strict=False)) for row in result.result_rows]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["event_time"], rows[-1]["message_id"])
        for row in rows:
            for column in JSON_COLUMNS:
                row[column] = msgspec.json.decode(row[column]) if row[column] else {}
            row["is_bot"] = bool(row["is_bot"])
            row["event_time"] = row["event_time"].replace(tzinfo=dt.UTC)
            row["received_at"] = row["received_at"].replace(tzinfo=dt.UTC)
            row["amount"] = str(row["amount"].normalize()) if row["payment_id"] else None
        resp.media = {"items": rows, "next_cursor": next_cursor}
