"""A query as asked, checked and resolved: `parse_query` turns a request body (Plausible Stats API v2
shape) into a `Query`, or raises Unprocessable whose details name the part that is wrong
(`{"part": "filters[1][2]"}`), so a client sees which metric, dimension, filter or value to fix.

Date ranges: `["2026-11-01", "2026-11-30"]` (local dates, both included, or ISO 8601 times),
"today", "7d" and "30d" (that many local days ending today), "month" (this month to date) or "all"
(from the company's first event, which the engine looks up: `Query.start` is None until then).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adtivity.errors import Unprocessable
from adtivity.settings import Settings
from queries.vocabulary import (
    DIMENSIONS,
    FILTER_OPERATORS,
    LOGICAL_OPERATORS,
    METRICS,
    PROPERTY,
    PROPERTY_KEY_MAX,
    TIME_DIMENSIONS,
)

RELATIVE_DAYS = {"today": 1, "7d": 7, "30d": 30}
DEFAULT_LIMIT = 100
VALUE_MAX_CHARS = 1_000
# What RE2 (ClickHouse's regular expressions) refuses though Python's `re` compiles it.
NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]")
FIELDS = ("metrics", "date_range", "dimensions", "filters", "timezone", "order_by", "limit", "offset")


@dataclass(frozen=True)
class Condition:
    operator: str  # one of FILTER_OPERATORS
    dimension: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Logical:
    operator: str  # and, or, not
    children: tuple[Filter, ...]


@dataclass(frozen=True)
class InSegment:
    segment_id: str


Filter = Condition | Logical | InSegment


@dataclass(frozen=True)
class Query:
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...]
    filters: tuple[Filter, ...]
    timezone: ZoneInfo
    start: dt.datetime | None  # naive UTC; None for "all" until the engine knows the first event
    end: dt.datetime
    order_by: tuple[tuple[str, str], ...]
    limit: int
    offset: int

    @property
    def segments(self) -> tuple[str, ...]:
        """Every segment id the filters name, once each."""
        return tuple(dict.fromkeys(segment_ids(self.filters)))


def wrong(part: str, message: str) -> Unprocessable:
    return Unprocessable("invalid_query", f"{part}: {message}", details={"part": part})


def parse_query(body: Any, settings: Settings, now: dt.datetime) -> Query:
    """`now` is an aware moment (the caller's clock)."""
    if not isinstance(body, dict):
        raise wrong("body", "must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise wrong(unknown[0], f"is not a query field; the fields are {', '.join(FIELDS)}")
    metrics = parse_metrics(body.get("metrics"))
    dimensions = parse_dimensions(body.get("dimensions", []), settings)
    timezone = parse_timezone(body.get("timezone", "UTC"))
    start, end = parse_date_range(body.get("date_range", "7d"), timezone, now, settings)
    counter = [0]
    filters = tuple(
        parse_filter(item, f"filters[{index}]", settings, counter)
        for index, item in enumerate(list_of(body.get("filters", []), "filters"))
    )
    order_by = parse_order(body.get("order_by"), metrics, dimensions)
    limit = whole_number(body.get("limit", DEFAULT_LIMIT), "limit", 1, settings.query_max_rows)
    offset = whole_number(body.get("offset", 0), "offset", 0, 10**9)
    return Query(
        metrics=metrics,
        dimensions=dimensions,
        filters=filters,
        timezone=timezone,
        start=start,
        end=end,
        order_by=order_by,
        limit=limit,
        offset=offset,
    )


def fixed_query(
    metrics: tuple[str, ...],
    dimensions: tuple[str, ...],
    filters: tuple[Filter, ...],
    start: dt.datetime,
    end: dt.datetime,
    timezone: ZoneInfo,
    limit: int,
) -> Query:
    """A query built by code rather than read from a request (the analytics endpoints' questions),
    in the default order."""
    return Query(
        metrics=metrics,
        dimensions=dimensions,
        filters=filters,
        timezone=timezone,
        start=start,
        end=end,
        order_by=parse_order(None, metrics, dimensions),
        limit=limit,
        offset=0,
    )


def list_of(value: Any, part: str) -> list[Any]:
    if not isinstance(value, list):
        raise wrong(part, "must be a list")
    return value


def parse_metrics(value: Any) -> tuple[str, ...]:
    metrics = list_of(value, "metrics") if value is not None else []
    if not metrics:
        raise wrong("metrics", f"name at least one of {', '.join(METRICS)}")
    for index, name in enumerate(metrics):
        if name not in METRICS:
            raise wrong(f"metrics[{index}]", f"{name!r} is not a metric; the metrics are {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise wrong("metrics", "names a metric twice")
    return tuple(metrics)


def check_dimension(name: Any, part: str) -> str:
    if not isinstance(name, str):
        raise wrong(part, "must be a dimension name")
    if name in DIMENSIONS or name in TIME_DIMENSIONS:
        return name
    if name.startswith(PROPERTY):
        key = name[len(PROPERTY) :]
        if not key or len(key) > PROPERTY_KEY_MAX or "" in key.split("."):
            raise wrong(part, f"a property key is 1 to {PROPERTY_KEY_MAX} characters, dotted parts non-empty")
        return name
    raise wrong(
        part, f"{name!r} is not a dimension; use property:<key> or one of {', '.join((*TIME_DIMENSIONS, *DIMENSIONS))}"
    )


def parse_dimensions(value: Any, settings: Settings) -> tuple[str, ...]:
    dimensions = list_of(value, "dimensions")
    if len(dimensions) > settings.query_max_dimensions:
        raise wrong("dimensions", f"at most {settings.query_max_dimensions} dimensions")
    names = tuple(check_dimension(name, f"dimensions[{i}]") for i, name in enumerate(dimensions))
    if len(set(names)) != len(names):
        raise wrong("dimensions", "names a dimension twice")
    if sum(name in TIME_DIMENSIONS for name in names) > 1:
        raise wrong("dimensions", "at most one time dimension")
    return names


def parse_timezone(value: Any) -> ZoneInfo:
    message = "must be an IANA time zone such as Europe/Berlin"
    if not isinstance(value, str) or not value:
        raise wrong("timezone", message)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise wrong("timezone", message) from None


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """Naive UTC of the local midnight that begins `day`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)


def parse_moment(value: Any, part: str, tz: ZoneInfo, *, end: bool) -> dt.datetime:
    """A date (local; as an end, the day is included) or an ISO 8601 time, as naive UTC."""
    if not isinstance(value, str):
        raise wrong(part, "must be a date (YYYY-MM-DD) or an ISO 8601 time")
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return local_midnight(day + dt.timedelta(days=1) if end else day, tz)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise wrong(part, "must be a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def parse_date_range(
    value: Any, tz: ZoneInfo, now: dt.datetime, settings: Settings
) -> tuple[dt.datetime | None, dt.datetime]:
    today = now.astimezone(tz).date()
    tomorrow = local_midnight(today + dt.timedelta(days=1), tz)
    if value == "all":
        return None, tomorrow
    if value == "month":
        return local_midnight(today.replace(day=1), tz), tomorrow
    if isinstance(value, str) and value in RELATIVE_DAYS:
        return local_midnight(today - dt.timedelta(days=RELATIVE_DAYS[value] - 1), tz), tomorrow
    if not isinstance(value, list) or len(value) != 2:
        raise wrong("date_range", 'must be [from, to], "today", "7d", "30d", "month" or "all"')
    start = parse_moment(value[0], "date_range[0]", tz, end=False)
    end = parse_moment(value[1], "date_range[1]", tz, end=True)
    if not dt.datetime(1970, 1, 1) <= start < end <= dt.datetime(2100, 1, 1):
        raise wrong("date_range", "must begin before it ends, between 1970 and 2100")
    if end - start > dt.timedelta(days=settings.analytics_max_days):
        raise wrong("date_range", f"may span at most {settings.analytics_max_days} days")
    return start, end


def parse_values(value: Any, part: str, operator: str, settings: Settings) -> tuple[str, ...]:
    values = list_of(value, part)
    if not 1 <= len(values) <= settings.query_max_filter_values:
        raise wrong(part, f"list 1 to {settings.query_max_filter_values} values")
    for index, item in enumerate(values):
        if not isinstance(item, str) or len(item) > VALUE_MAX_CHARS:
            raise wrong(f"{part}[{index}]", f"must be text of at most {VALUE_MAX_CHARS} characters")
        if operator.startswith("matches"):
            try:
                re.compile(item)
            except re.error as error:
                raise wrong(f"{part}[{index}]", f"is not a regular expression: {error}") from None
            if NOT_RE2.search(item):
                raise wrong(f"{part}[{index}]", "look-arounds and back-references are not supported (RE2 syntax)")
    return tuple(values)


def parse_filter(item: Any, part: str, settings: Settings, counter: list[int]) -> Filter:
    counter[0] += 1
    if counter[0] > settings.query_max_filters:
        raise wrong(part, f"a query holds at most {settings.query_max_filters} filters")
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise wrong(part, 'must be [operator, dimension, [values]], ["and"|"or"|"not", ...] or ["in_segment", id]')
    operator = item[0]
    if operator == "in_segment":
        if len(item) != 2 or not isinstance(item[1], str) or not item[1]:
            raise wrong(part, 'must be ["in_segment", "<segment id>"]')
        return InSegment(item[1])
    if operator in LOGICAL_OPERATORS:
        if len(item) != 2:
            raise wrong(part, f'must be ["{operator}", [filters]]')
        children = list_of(item[1], f"{part}[1]")
        if not children or (operator == "not" and len(children) != 1):
            raise wrong(f"{part}[1]", "not takes one filter" if operator == "not" else "list at least one filter")
        return Logical(
            operator,
            tuple(parse_filter(child, f"{part}[1][{i}]", settings, counter) for i, child in enumerate(children)),
        )
    if operator not in FILTER_OPERATORS:
        raise wrong(
            f"{part}[0]",
            f"{operator!r} is not an operator; use {', '.join((*FILTER_OPERATORS, *LOGICAL_OPERATORS, 'in_segment'))}",
        )
    if len(item) != 3:
        raise wrong(part, f'must be ["{operator}", dimension, [values]]')
    dimension = check_dimension(item[1], f"{part}[1]")
    if dimension in TIME_DIMENSIONS:
        raise wrong(f"{part}[1]", "time is chosen by date_range, not filtered")
    return Condition(operator, dimension, parse_values(item[2], f"{part}[2]", operator, settings))


def segment_ids(filters: tuple[Filter, ...]) -> list[str]:
    found = []
    for item in filters:
        if isinstance(item, InSegment):
            found.append(item.segment_id)
        elif isinstance(item, Logical):
            found.extend(segment_ids(item.children))
    return found


def parse_order(value: Any, metrics: tuple[str, ...], dimensions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Default: by the time dimension ascending when there is one, else by the first metric descending;
    the dimensions always follow, so pages are stable."""
    if value is None:
        time = [name for name in dimensions if name in TIME_DIMENSIONS]
        chosen = [(time[0], "asc")] if time else [(metrics[0], "desc")]
    else:
        chosen = []
        for index, item in enumerate(list_of(value, "order_by")):
            part = f"order_by[{index}]"
            if not isinstance(item, list) or len(item) != 2 or item[1] not in ("asc", "desc"):
                raise wrong(part, 'must be [metric or dimension, "asc"|"desc"]')
            if item[0] not in metrics and item[0] not in dimensions:
                raise wrong(f"{part}[0]", "orders by a metric or dimension the query names")
            chosen.append((item[0], item[1]))
    named = {name for name, _ in chosen}
    return (*chosen, *((name, "asc") for name in dimensions if name not in named))


def whole_number(value: Any, part: str, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise wrong(part, f"must be a whole number from {least} to {most}")
    return value
