"""Answers as CSV for clients that send `Accept: text/csv`: a query's rows (a column per dimension
and metric), and each analytics answer's table (its list of rows, flattened; or one row per metric)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import falcon
import msgspec

CSV = "text/csv; charset=utf-8"


def reply(req: falcon.Request, resp: falcon.Response, answer: bytes, as_table: Callable[[dict], str]) -> None:
    """The answer's JSON, or `as_table(answer)` as CSV when the client prefers text/csv."""
    if req.client_prefers([falcon.MEDIA_JSON, "text/csv"]) == "text/csv":
        resp.content_type = CSV
        resp.text = as_table(msgspec.json.decode(answer))
    else:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = answer


def as_csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()


def query_csv(answer: dict[str, Any]) -> str:
    meta = answer["meta"]
    return as_csv(
        [*meta["dimensions"], *meta["metrics"]],
        [[*row["dimensions"], *row["metrics"]] for row in answer["results"]],
    )


def flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted columns (lists as their length: a table holds one level of rows)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = len(value) if isinstance(value, list) else value
    return out


def records_csv(rows: list[dict[str, Any]]) -> str:
    """Flat records as CSV, a column for every field any of them has."""
    header = list(dict.fromkeys(name for row in rows for name in row))
    return as_csv(header, [[row.get(name) for name in header] for row in rows])


def analytics_csv(answer: dict[str, Any]) -> str:
    """The answer's first list of rows (points, items, cohorts, ...); else its metrics, one a row
    (the overview: value, previous, change); else its plain fields as name and value."""
    for value in answer.values():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            return records_csv([flat(item) for item in value])
    metrics = answer.get("metrics")
    if isinstance(metrics, dict):
        return records_csv([{"metric": name, **flat(value)} for name, value in metrics.items()])
    plain = [[name, value] for name, value in answer.items() if not isinstance(value, dict | list)]
    return as_csv(["name", "value"], plain)
