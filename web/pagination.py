"""Cursor pagination for every list: `?limit=&cursor=`, answered as `{"items", "next_cursor"}`.

Rows are ordered by (created_at, id); the cursor is the last row's pair, opaque to clients
(URL-safe base64 of JSON). Stable under inserts, unlike offsets.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable

import falcon
import msgspec
import peewee

from adtivity.settings import Settings
from web.errors import ApiError
from web.moments import naive_utc


def page_limit(req: falcon.Request, settings: Settings) -> int:
    limit = req.get_param_as_int("limit", min_value=1, max_value=settings.page_size_max)
    return limit or settings.page_size_default


def encode_cursor(moment: dt.datetime, tie_breaker) -> str:
    """An opaque cursor for the position (time, tie-breaker id) of the last row of a page."""
    return base64.urlsafe_b64encode(msgspec.json.encode([moment.isoformat(), str(tie_breaker)])).decode().rstrip("=")


def decode_cursor(cursor: str, tie_breaker_type=uuid.UUID) -> tuple[dt.datetime, object]:
    try:
        moment, tie_breaker = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = naive_utc(dt.datetime.fromisoformat(moment)), tie_breaker_type(tie_breaker)
    except (ValueError, TypeError, msgspec.DecodeError):
        position = None, None
    if position[0] is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave out")
    return position


def paginate(
    req: falcon.Request,
    settings: Settings,
    query: peewee.ModelSelect,
    created_at: peewee.Field,
    row_id: peewee.Field,
    key: Callable,
    tie_breaker_type: Callable = uuid.UUID,
) -> tuple[list, str | None]:
    """One page of `query` in (created_at, id) order, and the cursor of the next page (or None).
    `key(row)` gives a row's (created_at, id), since rows of a join carry them on a joined model."""
    limit = page_limit(req, settings)
    cursor = req.get_param("cursor")
    if cursor:
        after_time, after_id = decode_cursor(cursor, tie_breaker_type)
        query = query.where(peewee.Tuple(created_at, row_id) > peewee.Tuple(after_time, after_id))
    rows = list(query.order_by(created_at, row_id).limit(limit + 1))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
