"""The times the API takes in a parameter or a cursor: ISO 8601, converted to naive UTC, and within
the years the stores can hold (ClickHouse's DateTime starts in 1970). Anything else is refused with
the parameter's name, never carried into a query."""

from __future__ import annotations

import datetime as dt

EARLIEST = dt.datetime(1970, 1, 1)
LATEST = dt.datetime(2100, 1, 1)


def naive_utc(moment: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime | None:
    """`moment` (in `tz` when it has no offset of its own) as naive UTC, or None when it falls
    outside [EARLIEST, LATEST) or cannot be converted at all (year 1 in a zone east of UTC)."""
    try:
        if moment.tzinfo is None and tz is not None:
            moment = moment.replace(tzinfo=tz)
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        return None
    return moment if EARLIEST <= moment < LATEST else None
