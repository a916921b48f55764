"""`/v1/companies/{id}/analytics/...`: the dashboards' numbers (queries/analytics.py, which asks the
query engine), as HTTP: the parameters checked, the answer cached and shaped as JSON or CSV.

Every endpoint takes `from` and `to` (a date, read as local midnight, or an ISO 8601 time; default the
7 local days ending today) and `tz` (an IANA zone, default UTC), and answers `as_of` (when the rollups
were computed) and `complete_until` (every event accepted before it is in them). A member of any role
or a read key may read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import falcon
import msgspec

from adtivity.settings import Settings
from queries import analytics
from queries.analytics import BREAKDOWNS, RATIOS, SERIES, Asked, iso
from queries.engine import QueryEngine
from queries.rollup_reader import INTERVALS, Range
from web.errors import ApiError
from web.moments import EARLIEST, LATEST, naive_utc
from web.principals import company_id_access
from web.tables import analytics_csv, reply

_json = msgspec.json.Encoder()


def bad(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"{name}: {message}")


def parse_moment(req: falcon.Request, name: str, tz: ZoneInfo) -> dt.datetime | None:
    value = req.get_param(name)
    if not value:
        return None
    try:
        moment = (
            dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
            if len(value) == 10
            else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise bad(name, "must be a date (YYYY-MM-DD) or an ISO 8601 time") from None
    converted = naive_utc(moment, tz)
    if converted is None:
        raise bad(name, f"must fall between {EARLIEST.year} and {LATEST.year}")
    return converted


def parse_range(req: falcon.Request, settings: Settings, now: dt.datetime | None = None) -> Range:
    """`now`: an aware moment (the engine's clock), else the system's."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        tz = ZoneInfo(req.get_param("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("tz", "must be an IANA time zone such as Europe/Paris") from None
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    default_end = (today + dt.timedelta(days=1)).replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)
    end = parse_moment(req, "to", tz) or default_end
    start = parse_moment(req, "from", tz) or end - dt.timedelta(days=7)
    start, end = (moment.replace(minute=0, second=0, microsecond=0) for moment in (start, end))
    if end <= start:
        raise bad("to", "must be at least an hour after from")
    if end - start > dt.timedelta(days=settings.analytics_max_days):
        raise bad("from", f"the range may span at most {settings.analytics_max_days} days")
    return Range(start, end, tz)


class AnalyticsResource:
    """Answers GET with the body `figures` computes and the common fields, cached like the query API's answers
    (queries/cache.py): stamped with the rollups' version, which each rollup run sets, and fresh until
    the next run when every question ends before the rollups' watermark, else QUERY_LIVE_CACHE_SECONDS."""

    def __init__(self, settings: Settings, engine: QueryEngine) -> None:
        self.settings = settings
        self.engine = engine

    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        """What computes the body (queries/analytics.py), once the request's parameters are checked:
        a bad one is refused before the cache or the stores are asked anything."""
        raise NotImplementedError

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        company = str(company_id_access(req, company_id, min_role="viewer", read_key=True))
        span = parse_range(req, self.settings, self.engine.clock())
        figures = self.figures(req, span)
        question = "|".join(
            [
                "analytics",
                type(self).__name__,
                span.start.isoformat(),
                span.end.isoformat(),
                span.tz.key,
                *sorted(f"{k}={v}" for k, v in req.params.items() if k not in ("from", "to", "tz")),
            ]
        )

        def answer() -> tuple[bytes, bool]:
            asked = Asked(self.engine, company, span)
            body = {
                "company_id": company,
                "from": iso(span.start),
                "to": iso(span.end),
                "timezone": span.tz.key,
                "as_of": iso(asked.as_of),
                "complete_until": iso(asked.complete_until),
                "bot_events_excluded": int(asked.reader.totals(span, ("bot_events",))["bot_events"]),
                **figures(asked),
            }
            return _json.encode(body), asked.settled

        reply(req, resp, self.engine.cache.answer(company, question, answer), analytics_csv)

    def limit(self, req: falcon.Request) -> int:
        return req.get_param_as_int("limit", min_value=1, max_value=self.settings.analytics_breakdown_max) or 10

    def check_points(self, count: int, name: str, unit: str) -> None:
        if count > self.settings.analytics_max_points:
            raise bad(name, f"the range has more than {self.settings.analytics_max_points} {unit}s")


class Overview(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        return analytics.overview


class TimeSeries(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        metric = req.get_param("metric") or "events"
        interval = req.get_param("interval") or "day"
        if metric not in SERIES + RATIOS:
            raise bad("metric", f"must be one of {', '.join(SERIES + RATIOS)}")
        if interval not in INTERVALS:
            raise bad("interval", f"must be one of {', '.join(INTERVALS)}")
        self.check_points(len(span.local_buckets(interval)), "interval", interval)
        return partial(analytics.time_series, metric=metric, interval=interval)


class Breakdown(AnalyticsResource):
    fixed_dimension: str | None = None

    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        dimension = self.fixed_dimension or req.get_param("dimension") or ""
        if dimension not in BREAKDOWNS:
            raise bad("dimension", f"must be one of {', '.join(BREAKDOWNS)}")
        return partial(analytics.breakdown, dimension=dimension, limit=self.limit(req))


class Regions(Breakdown):
    fixed_dimension = "country"


class ActiveUsers(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        self.check_points(len(span.local_buckets("day")), "from", "day")
        return analytics.active_users


class SessionsSummary(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        return analytics.sessions


class Web3(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        return partial(analytics.web3, limit=self.limit(req), most=self.settings.analytics_breakdown_max)


class Payments(AnalyticsResource):
    def figures(self, req: falcon.Request, span: Range) -> Callable[[Asked], dict]:
        return analytics.payments


ROUTES = {
    "overview": Overview,
    "timeseries": TimeSeries,
    "breakdown": Breakdown,
    "regions": Regions,
    "active-users": ActiveUsers,
    "sessions": SessionsSummary,
    "web3": Web3,
    "payments": Payments,
}
