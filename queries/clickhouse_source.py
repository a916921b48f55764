"""Answering a query from ClickHouse: one grouped query over the company's human events of the slice
(and, for session ratios, a per-session pass joined to it by the dimensions), ordered and paged in
ClickHouse, within a row limit and a time limit. A ratio over nothing is NaN in ClickHouse (0 / 0),
None in the answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from adtivity.settings import Settings
from queries.spec import Query
from queries.sql import Compiler
from queries.vocabulary import AGGREGATES, SESSION_RATIOS, TIME_DIMENSIONS

COUNTS = (
    "events",
    "page_views",
    "users",
    "new_users",
    "returning_users",
    "wallets",
    "sessions",
    "transactions",
    "payments",
)
MAX_QUERY_BYTES = 16 * 1024 * 1024  # static segments bind their members into the query's text


@dataclass
class Rows:
    rows: list[tuple[tuple[str, ...], list[Any]]]  # (dimension values, metric values in query order)
    total_rows: int


def settings_for(settings: Settings) -> dict[str, Any]:
    return {
        "max_execution_time": settings.query_timeout_seconds,
        "max_result_rows": settings.query_max_rows + 1,
        "result_overflow_mode": "break",
        "max_query_size": MAX_QUERY_BYTES,
        # On a cluster, a segment's `IN (SELECT ... FROM events)` runs on each shard against its own rows:
        # exact, since a person's events all live on one shard (models/clickhouse_cluster.py).
        "distributed_product_mode": "local",
    }


def money(amount: Decimal) -> str:
    """Exact, without trailing zeros or an exponent: 949.44, 100."""
    return format(amount.normalize(), "f")


def shaped(metric: str, value: Any) -> Any:
    if metric in COUNTS:
        return int(value)
    if metric == "revenue":
        return money(Decimal(value))
    if metric == "volume":
        return round(float(value), 6)
    return None if value is None or value != value else round(float(value), 4)  # ratios; NaN is "none"


def first_event(client: Client, settings: Settings, company_id: str) -> dt.datetime | None:
    """When the company's first human event happened (for the "all" date range)."""
    rows = client.query(
        "SELECT min(event_time), count() FROM events WHERE company_id = toUUID(%(company)s) AND is_bot = 0",
        parameters={"company": company_id},
        settings=settings_for(settings),
    ).result_rows
    moment, events = rows[0]
    return moment.replace(tzinfo=None) if events else None


def accepted_since(
    client: Client, settings: Settings, company_id: str, start: dt.datetime, end: dt.datetime, watermark: dt.datetime
) -> bool:
    """Whether an event of [start, end) was accepted at or after `watermark` (so the rollups, complete
    for what was accepted before it, may lack it: a late or imported event; a bot's counts too, which
    only costs a fall back to ClickHouse)."""
    seconds = {
        "company": company_id,
        "start": int(start.replace(tzinfo=dt.UTC).timestamp()),
        "end": int(end.replace(tzinfo=dt.UTC).timestamp()),
        "watermark": int(watermark.replace(tzinfo=dt.UTC).timestamp()),
    }
    # PREWHERE: only received_at is read until a row matches, and usually none does (19 ms instead of
    # 54 over 10M events).
    found = client.query(
        "SELECT count() FROM events PREWHERE received_at >= toDateTime(%(watermark)s) "
        "WHERE company_id = toUUID(%(company)s) AND event_time >= toDateTime(%(start)s) "
        "AND event_time < toDateTime(%(end)s)",
        parameters=seconds,
        settings=settings_for(settings),
    ).result_rows[0][0]
    return bool(found)


def run(client: Client, settings: Settings, query: Query, compiler: Compiler, start: dt.datetime) -> Rows:
    """The query's rows over [start, query.end)."""
    options = settings_for(settings)
    where = compiler.where(start, query.end, query.filters)
    expressions = [compiler.dimension(name) for name in query.dimensions]
    where += "".join(
        f" AND {expression} != ''"
        for name, expression in zip(query.dimensions, expressions, strict=True)
        if name not in TIME_DIMENSIONS
    )
    keys = [f"d{i}" for i in range(len(expressions))]
    selected = [f"{expression} AS {key}" for expression, key in zip(expressions, keys, strict=True)]
    if "conversion_rate" in query.metrics:
        everyone = compiler.where(start, query.end, ())
        total = client.query(
            f"SELECT {AGGREGATES['users']} FROM events WHERE {everyone}", parameters=compiler.params, settings=options
        ).result_rows[0][0]
        rate = f"{AGGREGATES['users']} / {compiler.bind(total)}"  # the row's users are among them
    plain = [
        f"{AGGREGATES[metric] if metric in AGGREGATES else rate} AS m_{metric}"
        for metric in query.metrics
        if metric not in SESSION_RATIOS
    ]
    grouping = f" GROUP BY {', '.join(keys)}" if keys else ""
    inner = f"SELECT {', '.join([*selected, *plain]) or '1'} FROM events WHERE {where}{grouping}"
    if any(metric in SESSION_RATIOS for metric in query.metrics):
        per_session = (
            f"SELECT {', '.join([*selected, 'session_id'])}, count() AS n, "
            f"toUInt64(max(event_time) - min(event_time)) AS span FROM events "
            f"WHERE {where} AND session_id != '' GROUP BY {', '.join([*keys, 'session_id'])}"
        )
        sessions = (
            f"SELECT {', '.join([*keys, 'count() AS s_count', 'countIf(n = 1) AS s_bounces', 'sum(span) AS s_seconds'])} "
            f"FROM ({per_session}){grouping}"
        )
        if keys:
            source = f"({inner}) AS m ALL LEFT JOIN ({sessions}) AS s USING ({', '.join(keys)})"
        else:
            source = f"({inner}) AS m CROSS JOIN ({sessions}) AS s"
    else:
        source = f"({inner}) AS m"
    columns = [*keys, *(metric_column(metric) for metric in query.metrics)]
    order = ", ".join(f"{order_column(name, query)} {direction.upper()}" for name, direction in query.order_by)
    statement = f"SELECT {', '.join(columns)} FROM {source}"
    if keys:
        statement += f" ORDER BY {order} LIMIT {query.offset}, {query.limit}"
    found = client.query(statement, parameters=compiler.params, settings=options).result_rows
    rows = [
        (
            tuple(str(value) for value in row[: len(keys)]),
            [shaped(metric, value) for metric, value in zip(query.metrics, row[len(keys) :], strict=True)],
        )
        for row in found
    ]
    if not keys:
        return Rows(rows if query.offset == 0 else [], 1)
    if query.offset == 0 and len(rows) < query.limit:
        return Rows(rows, len(rows))  # every row is here: no second pass to count them
    total_rows = client.query(
        f"SELECT count() FROM (SELECT {', '.join(selected)} FROM events WHERE {where}{grouping})",
        parameters=compiler.params,
        settings=options,
    ).result_rows[0][0]
    return Rows(rows, int(total_rows))


def metric_column(metric: str) -> str:
    if metric == "bounce_rate":
        return "s_bounces / s_count"
    if metric == "avg_session_seconds":
        return "s_seconds / s_count"
    return f"m_{metric}"


def order_column(name: str, query: Query) -> str:
    if name in query.dimensions:
        return f"d{query.dimensions.index(name)}"
    return metric_column(name)
