"""`/v1/companies/{id}/analytics/...`: dashboards' numbers, read from the rollups only (queries/rollup_reader.py).

Every endpoint takes `from` and `to` (a date, read as local midnight, or an ISO 8601 time; default the
7 local days ending today) and `tz` (an IANA zone, default UTC), and answers `as_of` (when the rollups
were computed) and `complete_until` (every event accepted before it is counted). A member of any role
or a read key may read.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import falcon
import msgspec
import redis

from adtivity.settings import Settings
from queries.cache import AnswerCache
from queries.clickhouse_source import money
from queries.rollup_reader import INTERVALS, UTC, Range, RollupReader, advance
from web.errors import ApiError
from web.moments import EARLIEST, LATEST, naive_utc
from web.principals import company_id_access
from web.tables import analytics_csv, reply

# Dimension -> the metric it breaks down.
DIMENSIONS = {
    "type": "events",
    "name": "events",
    "referrer_domain": "events",
    "utm_source": "events",
    "utm_campaign": "events",
    "country": "events",
    "browser": "events",
    "os": "events",
    "device": "events",
    "page_path": "page_views",
    "chain_status": "transactions",
    "contract_address": "transactions",
    "wallet_address": "transactions",
    "payment_status": "payments",
    "currency": "revenue",
    "chain_token": "volume",
}
STORED_DIMENSION = {"payment_status": "status"}  # API name -> rollup dimension, where they differ
ADDITIVE = ("events", "page_views", "sessions", "new_users", "returning_users")
DISTINCT = ("users", "wallets")
RATIOS = ("bounce_rate", "avg_session_seconds")
MONEY = ("revenue", "volume")
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


def parse_range(req: falcon.Request, settings: Settings) -> Range:
    try:
        tz = ZoneInfo(req.get_param("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("tz", "must be an IANA time zone such as Europe/Paris") from None
    today = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    default_end = (today + dt.timedelta(days=1)).replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)
    end = parse_moment(req, "to", tz) or default_end
    start = parse_moment(req, "from", tz) or end - dt.timedelta(days=7)
    start, end = (moment.replace(minute=0, second=0, microsecond=0) for moment in (start, end))
    if end <= start:
        raise bad("to", "must be at least an hour after from")
    if end - start > dt.timedelta(days=settings.analytics_max_days):
        raise bad("from", f"the range may span at most {settings.analytics_max_days} days")
    return Range(start, end, tz)


def count(amount: Decimal) -> int:
    return int(amount)


def ratio(numerator: Decimal, denominator: Decimal) -> float | None:
    return round(float(numerator / denominator), 4) if denominator else None


def change(value, previous) -> float | None:
    if value is None or previous is None or not previous:
        return None
    return round((float(value) - float(previous)) / float(previous), 4)


def iso(moment: dt.datetime | None, tz: ZoneInfo = UTC) -> str | None:
    return moment.replace(tzinfo=tz).isoformat() if moment else None


class AnalyticsResource:
    """Answers GET with `compute`'s body and the common fields, cached like the query API's answers
    (queries/cache.py): stamped with the rollups' version, which each rollup run sets, so a repeated
    read costs one Redis round trip until the next run changes the numbers."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.cache = AnswerCache(settings, client)

    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        raise NotImplementedError

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        reader = RollupReader(str(company), self.settings.rollup_hll_lg_k)
        span = parse_range(req, self.settings)
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
            """From the rollups alone: it changes only with them."""
            as_of, complete_until = reader.state()
            body = {
                "company_id": reader.company_id,
                "from": iso(span.start),
                "to": iso(span.end),
                "timezone": span.tz.key,
                "as_of": iso(as_of),
                "complete_until": iso(complete_until),
                "bot_events_excluded": count(reader.totals(span, ("bot_events",))["bot_events"]),
                **self.compute(req, reader, span),
            }
            return _json.encode(body), True

        reply(req, resp, self.cache.answer(reader.company_id, question, answer), analytics_csv)

    def limit(self, req: falcon.Request) -> int:
        return req.get_param_as_int("limit", min_value=1, max_value=self.settings.analytics_breakdown_max) or 10


def summary(reader: RollupReader, span: Range) -> dict:
    totals = reader.totals(span, ("events", "page_views", "sessions", "bounces", "session_seconds", "new_users"))
    return {
        "events": count(totals["events"]),
        "page_views": count(totals["page_views"]),
        "users": reader.distinct(span, "users"),
        "new_users": count(totals["new_users"]),
        "sessions": count(totals["sessions"]),
        "bounce_rate": ratio(totals["bounces"], totals["sessions"]),
        "avg_session_seconds": ratio(totals["session_seconds"], totals["sessions"]),
    }


class Overview(AnalyticsResource):
    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        current, previous = summary(reader, span), summary(reader, span.previous())
        return {
            "previous": {"from": iso(span.previous().start), "to": iso(span.previous().end)},
            "metrics": {
                name: {"value": value, "previous": previous[name], "change": change(value, previous[name])}
                for name, value in current.items()
            },
        }


class TimeSeries(AnalyticsResource):
    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        metric = req.get_param("metric") or "events"
        interval = req.get_param("interval") or "day"
        if metric not in ADDITIVE + DISTINCT + RATIOS:
            raise bad("metric", f"must be one of {', '.join(ADDITIVE + DISTINCT + RATIOS)}")
        if interval not in INTERVALS:
            raise bad("interval", f"must be one of {', '.join(INTERVALS)}")
        buckets = span.local_buckets(interval)
        if len(buckets) > self.settings.analytics_max_points:
            raise bad("interval", f"the range has more than {self.settings.analytics_max_points} {interval}s")
        if metric in DISTINCT:
            values = reader.distinct_series(span, metric, interval)
            points = [values.get(bucket, 0) for bucket in buckets]
        elif metric in RATIOS:
            numerator = "bounces" if metric == "bounce_rate" else "session_seconds"
            series = reader.series(span, (numerator, "sessions"), interval)
            points = [
                ratio(series[numerator].get(b, Decimal(0)), series["sessions"].get(b, Decimal(0))) for b in buckets
            ]
        else:
            series = reader.series(span, (metric,), interval)[metric]
            points = [count(series.get(bucket, Decimal(0))) for bucket in buckets]
        return {
            "metric": metric,
            "interval": interval,
            "points": [
                {"start": iso(bucket, span.tz), "end": iso(advance(bucket, interval), span.tz), "value": value}
                for bucket, value in zip(buckets, points, strict=False)
            ],
        }


class Breakdown(AnalyticsResource):
    fixed_dimension: str | None = None

    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        dimension = self.fixed_dimension or req.get_param("dimension") or ""
        if dimension not in DIMENSIONS:
            raise bad("dimension", f"must be one of {', '.join(DIMENSIONS)}")
        metric = DIMENSIONS[dimension]
        rows = reader.breakdown(span, metric, STORED_DIMENSION.get(dimension, dimension), self.limit(req))
        shape = money if metric in MONEY else count
        return {
            "dimension": dimension,
            "metric": metric,
            "items": [{"value": value, "amount": shape(amount)} for value, amount in rows],
        }


class Regions(Breakdown):
    fixed_dimension = "country"


class ActiveUsers(AnalyticsResource):
    """DAU, WAU and MAU for each local day of the range: distinct users of the day, of the 7 and of
    the 30 days ending with it."""

    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        days = span.local_buckets("day")
        if len(days) > self.settings.analytics_max_points:
            raise bad("from", f"the range has more than {self.settings.analytics_max_points} days")
        wider = Range(span.start - dt.timedelta(days=29), span.end, span.tz)
        by_day = reader.sketches_by_bucket(wider, "users", "day")

        def users(last_day: dt.datetime, length: int) -> int:
            return reader.estimate(
                sketch for offset in range(length) for sketch in by_day.get(last_day - dt.timedelta(days=offset), ())
            )

        return {
            "points": [
                {"day": day.date().isoformat(), "dau": users(day, 1), "wau": users(day, 7), "mau": users(day, 30)}
                for day in days
            ]
        }


class SessionsSummary(AnalyticsResource):
    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        facts = summary(reader, span)
        return {
            "sessions": facts["sessions"],
            "bounce_rate": facts["bounce_rate"],
            "avg_session_seconds": facts["avg_session_seconds"],
            "sessions_per_user": round(facts["sessions"] / facts["users"], 4) if facts["users"] else None,
            "new_users": facts["new_users"],
            "returning_users": max(0, facts["users"] - facts["new_users"]),
        }


def pairs(rows, names: tuple[str, str, str], shape) -> list[dict]:
    """Breakdown rows whose value joins two fields with "|" (chain and status, chain and token)."""
    return [dict(zip(names, (*value.partition("|")[::2], shape(amount)), strict=False)) for value, amount in rows]


class Web3(AnalyticsResource):
    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        limit = self.limit(req)
        types = dict(reader.breakdown(span, "events", "type", 100))
        wallets, previous = reader.distinct(span, "wallets"), reader.distinct(span.previous(), "wallets")
        transactions = pairs(
            reader.breakdown(span, "transactions", "chain_status", self.settings.analytics_breakdown_max),
            ("chain_id", "status", "count"),
            count,
        )
        volume = pairs(
            reader.breakdown(span, "volume", "chain_token", self.settings.analytics_breakdown_max),
            ("chain_id", "token", "volume"),
            money,
        )
        return {
            "wallets": wallets,
            "wallets_previous": previous,
            "wallets_change": change(wallets, previous),
            "wallet_connects": count(types.get("wallet_connect", Decimal(0))),
            "transactions": transactions,
            "volume": volume,
            "top_contracts": [
                {"address": v, "transactions": count(a)}
                for v, a in reader.breakdown(span, "transactions", "contract_address", limit)
            ],
            "top_wallets": [
                {"address": v, "transactions": count(a)}
                for v, a in reader.breakdown(span, "transactions", "wallet_address", limit)
            ],
            "verified": self.verified(reader, span),
        }

    def verified(self, reader: RollupReader, span: Range) -> dict:
        """What the chain says of the reported transactions (docs/web3.md), beside what clients said."""
        most = self.settings.analytics_breakdown_max
        totals = reader.totals(span, ("verified_transactions", "disagreements"))
        volume = pairs(
            reader.breakdown(span, "verified_volume", "chain_token", most), ("chain_id", "token", "volume"), money
        )
        symbols = reader.token_symbols([(row["chain_id"], row["token"]) for row in volume if row["token"] != "native"])
        return {
            "transactions": count(totals["verified_transactions"]),
            "by_state": pairs(
                reader.breakdown(span, "verified_transactions", "chain_state", most),
                ("chain_id", "state", "count"),
                count,
            ),
            "disagreements": count(totals["disagreements"]),
            "disagreements_by_state": pairs(
                reader.breakdown(span, "disagreements", "chain_state", most), ("chain_id", "state", "count"), count
            ),
            "volume": [row | {"symbol": symbols.get((row["chain_id"], row["token"]), "")} for row in volume],
        }


class Payments(AnalyticsResource):
    def compute(self, req: falcon.Request, reader: RollupReader, span: Range) -> dict:
        statuses = {value: count(amount) for value, amount in reader.breakdown(span, "payments", "status", 100)}
        started, completed = statuses.get("started", 0), statuses.get("completed", 0)
        return {
            "started": started,
            "completed": completed,
            "failed": statuses.get("failed", 0),
            "cancelled": statuses.get("cancelled", 0),
            "revenue": [
                {"currency": v, "amount": money(a)} for v, a in reader.breakdown(span, "revenue", "currency", 100)
            ],
            "funnel": [
                {"step": "started", "count": started},
                {
                    "step": "completed",
                    "count": completed,
                    "conversion": round(completed / started, 4) if started else None,
                },
            ],
        }


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
