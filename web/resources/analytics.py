"""`/v1/companies/{id}/analytics/...`: the dashboards' numbers, each asked of the query engine
(queries/engine.py), which answers from the rollups what they hold exactly and the rest from ClickHouse,
counting the events accepted after the rollups' watermark too, so "today" is never behind. Two kinds
of number are read from the rollups alone (queries/rollup_reader.py): active users (DAU, WAU and MAU,
distinct counts over sliding windows merged from the rollups' sketches: estimates) and what the chain
says of reported transactions (`verified`, from the verifier's results); so is `bot_events_excluded`.

Every endpoint takes `from` and `to` (a date, read as local midnight, or an ISO 8601 time; default the
7 local days ending today) and `tz` (an IANA zone, default UTC), and answers `as_of` (when the rollups
were computed) and `complete_until` (every event accepted before it is in them). A member of any role
or a read key may read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import falcon
import msgspec

from adtivity.settings import Settings
from queries.clickhouse_source import money
from queries.engine import QueryEngine
from queries.rollup_reader import INTERVALS, UTC, Range, RollupReader, advance
from queries.rollup_source import ADDITIVE
from queries.spec import Condition, Filter, fixed_query
from web.errors import ApiError
from web.moments import EARLIEST, LATEST, naive_utc
from web.principals import company_id_access
from web.tables import analytics_csv, reply


def type_is(*types: str) -> Condition:
    return Condition("is", "event:type", types)


TRANSACTIONS = (type_is("transaction"),)
# API dimension -> (the metric it breaks down, the engine's dimensions, filters narrowing the events to
# those the dimension describes). A pair of dimensions answers "first|second" values.
BREAKDOWNS: dict[str, tuple[str, tuple[str, ...], tuple[Filter, ...]]] = {
    "type": ("events", ("event:type",), ()),
    "name": ("events", ("event:name",), (type_is("track", "screen"),)),
    "referrer_domain": ("events", ("referrer_domain",), ()),
    "utm_source": ("events", ("utm_source",), ()),
    "utm_campaign": ("events", ("utm_campaign",), ()),
    "country": ("events", ("country",), ()),
    "browser": ("events", ("browser",), ()),
    "os": ("events", ("os",), ()),
    "device": ("events", ("device",), ()),
    "page_path": ("page_views", ("page_path",), (type_is("page"),)),
    "chain_status": ("transactions", ("chain", "transaction_status"), TRANSACTIONS),
    "contract_address": ("transactions", ("contract",), TRANSACTIONS),
    "wallet_address": ("transactions", ("wallet",), TRANSACTIONS),
    "payment_status": ("payments", ("payment_status",), ()),
    "currency": ("revenue", ("currency",), (type_is("payment"), Condition("is", "payment_status", ("completed",)))),
    "chain_token": ("volume", ("chain", "token"), TRANSACTIONS),
}
SERIES = ("events", "page_views", "sessions", "new_users", "returning_users", "users", "wallets")
RATIOS = ("bounce_rate", "avg_session_seconds")
SUMMARY = ("events", "page_views", "users", "new_users", "sessions", "bounce_rate", "avg_session_seconds")
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


def change(value, previous) -> float | None:
    if value is None or previous is None or not previous:
        return None
    return round((float(value) - float(previous)) / float(previous), 4)


def iso(moment: dt.datetime | None, tz: ZoneInfo = UTC) -> str | None:
    return moment.replace(tzinfo=tz).isoformat() if moment else None


def bucket_label(bucket: dt.datetime, interval: str) -> str:
    """A local bucket's start as the engine labels its time dimension."""
    return bucket.strftime("%Y-%m-%d %H:00:00") if interval == "hour" else bucket.date().isoformat()


class Asked:
    """One answer's questions to the engine, over the range asked unless told: their rows, and
    whether every one of them is settled (ends before the rollups' watermark)."""

    def __init__(self, engine: QueryEngine, company_id: str, span: Range) -> None:
        self.engine = engine
        self.company_id = company_id
        self.span = span
        self.reader = RollupReader(company_id, engine.settings.rollup_hll_lg_k)
        self.settled = True

    def rows(
        self,
        metrics: tuple[str, ...],
        dimensions: tuple[str, ...] = (),
        filters: tuple[Filter, ...] = (),
        *,
        span: Range | None = None,
        limit: int = 1,
    ) -> list[tuple[tuple[str, ...], list[Any]]]:
        span = span or self.span
        query = fixed_query(metrics, dimensions, filters, span.start, span.end, span.tz, limit)
        found = self.engine.evaluate(self.company_id, query)
        self.settled = self.settled and found.settled
        return found.rows.rows

    def totals(self, metrics: tuple[str, ...], filters: tuple[Filter, ...] = (), *, span: Range | None = None) -> dict:
        """Metric -> its total. Without filters, the metrics the rollups hold exactly are asked apart
        from the others (which ClickHouse answers), so the rollups answer them."""
        groups = (
            [metrics] if filters else [tuple(m for m in metrics if (m in ADDITIVE) == held) for held in (True, False)]
        )
        found = {}
        for group in groups:
            if group:
                [(_, values)] = self.rows(group, filters=filters, span=span)
                found |= dict(zip(group, values, strict=True))
        return {metric: found[metric] for metric in metrics}

    def breakdown(self, dimension: str, limit: int) -> list[tuple[str, Any]]:
        """(value, amount) of the API dimension's top `limit` values; a pair of dimensions joins its
        values with "|" (the second may be empty: a transfer of the chain's own coin has no token)."""
        metric, dimensions, filters = BREAKDOWNS[dimension]
        found = [
            ("|".join(values), amounts[0]) for values, amounts in self.rows((metric,), dimensions, filters, limit=limit)
        ]
        if len(dimensions) == 2:
            empty = Condition("is", dimensions[1], ("",))
            found += [
                (f"{values[0]}|", amounts[0])
                for values, amounts in self.rows((metric,), dimensions[:1], (*filters, empty), limit=limit)
            ]
            found = sorted(found, key=lambda row: (-Decimal(str(row[1])), row[0]))[:limit]
        return found


class AnalyticsResource:
    """Answers GET with `compute`'s body and the common fields, cached like the query API's answers
    (queries/cache.py): stamped with the rollups' version, which each rollup run sets, and fresh until
    the next run when every question ends before the rollups' watermark, else QUERY_LIVE_CACHE_SECONDS."""

    def __init__(self, settings: Settings, engine: QueryEngine) -> None:
        self.settings = settings
        self.engine = engine

    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        raise NotImplementedError

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        company = str(company_id_access(req, company_id, min_role="viewer", read_key=True))
        span = parse_range(req, self.settings, self.engine.clock())
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
            as_of, complete_until = asked.reader.state()
            body = {
                "company_id": company,
                "from": iso(span.start),
                "to": iso(span.end),
                "timezone": span.tz.key,
                "as_of": iso(as_of),
                "complete_until": iso(complete_until),
                "bot_events_excluded": int(asked.reader.totals(span, ("bot_events",))["bot_events"]),
                **self.compute(req, asked, span),
            }
            return _json.encode(body), asked.settled

        reply(req, resp, self.engine.cache.answer(company, question, answer), analytics_csv)

    def limit(self, req: falcon.Request) -> int:
        return req.get_param_as_int("limit", min_value=1, max_value=self.settings.analytics_breakdown_max) or 10


class Overview(AnalyticsResource):
    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        current, previous = asked.totals(SUMMARY), asked.totals(SUMMARY, span=span.previous())
        return {
            "previous": {"from": iso(span.previous().start), "to": iso(span.previous().end)},
            "metrics": {
                name: {"value": value, "previous": previous[name], "change": change(value, previous[name])}
                for name, value in current.items()
            },
        }


class TimeSeries(AnalyticsResource):
    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        metric = req.get_param("metric") or "events"
        interval = req.get_param("interval") or "day"
        if metric not in SERIES + RATIOS:
            raise bad("metric", f"must be one of {', '.join(SERIES + RATIOS)}")
        if interval not in INTERVALS:
            raise bad("interval", f"must be one of {', '.join(INTERVALS)}")
        buckets = span.local_buckets(interval)
        if len(buckets) > self.settings.analytics_max_points:
            raise bad("interval", f"the range has more than {self.settings.analytics_max_points} {interval}s")
        found = {
            values[0]: amounts[0]
            for values, amounts in asked.rows((metric,), (f"time:{interval}",), limit=len(buckets))
        }
        none = None if metric in RATIOS else 0
        return {
            "metric": metric,
            "interval": interval,
            "points": [
                {
                    "start": iso(bucket, span.tz),
                    "end": iso(advance(bucket, interval), span.tz),
                    "value": found.get(bucket_label(bucket, interval), none),
                }
                for bucket in buckets
            ],
        }


def shaped(metric: str, amount: Any) -> Any:
    """Money as exact decimal text, as the rollups keep it; counts as they are."""
    return money(Decimal(str(amount))) if metric in MONEY else amount


class Breakdown(AnalyticsResource):
    fixed_dimension: str | None = None

    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        dimension = self.fixed_dimension or req.get_param("dimension") or ""
        if dimension not in BREAKDOWNS:
            raise bad("dimension", f"must be one of {', '.join(BREAKDOWNS)}")
        metric = BREAKDOWNS[dimension][0]
        return {
            "dimension": dimension,
            "metric": metric,
            "items": [
                {"value": value, "amount": shaped(metric, amount)}
                for value, amount in asked.breakdown(dimension, self.limit(req))
            ],
        }


class Regions(Breakdown):
    fixed_dimension = "country"


class ActiveUsers(AnalyticsResource):
    """DAU, WAU and MAU for each local day of the range: distinct users of the day, of the 7 and of
    the 30 days ending with it, merged from the rollups' daily sketches (estimates)."""

    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        days = span.local_buckets("day")
        if len(days) > self.settings.analytics_max_points:
            raise bad("from", f"the range has more than {self.settings.analytics_max_points} days")
        wider = Range(span.start - dt.timedelta(days=29), span.end, span.tz)
        by_day = asked.reader.sketches_by_bucket(wider, "users", "day")

        def users(last_day: dt.datetime, length: int) -> int:
            return asked.reader.estimate(
                sketch for offset in range(length) for sketch in by_day.get(last_day - dt.timedelta(days=offset), ())
            )

        return {
            "estimated": True,  # merged sketches, unlike the engine's exact counts
            "points": [
                {"day": day.date().isoformat(), "dau": users(day, 1), "wau": users(day, 7), "mau": users(day, 30)}
                for day in days
            ],
        }


class SessionsSummary(AnalyticsResource):
    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        facts = asked.totals(("sessions", "bounce_rate", "avg_session_seconds", "users", "new_users"))
        return {
            "sessions": facts["sessions"],
            "bounce_rate": facts["bounce_rate"],
            "avg_session_seconds": facts["avg_session_seconds"],
            "sessions_per_user": round(facts["sessions"] / facts["users"], 4) if facts["users"] else None,
            "new_users": facts["new_users"],
            "returning_users": facts["users"] - facts["new_users"],
        }


def pairs(rows: Iterable[tuple[str, Any]], names: tuple[str, str, str], shape) -> list[dict]:
    """Breakdown rows whose value joins two fields with "|" (chain and status, chain and token)."""
    return [dict(zip(names, (*value.partition("|")[::2], shape(amount)), strict=False)) for value, amount in rows]


def as_money(amount: Any) -> str:
    return money(Decimal(str(amount)))


class Web3(AnalyticsResource):
    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        limit, most = self.limit(req), self.settings.analytics_breakdown_max
        wallets = asked.totals(("wallets",))["wallets"]
        previous = asked.totals(("wallets",), span=span.previous())["wallets"]
        return {
            "wallets": wallets,
            "wallets_previous": previous,
            "wallets_change": change(wallets, previous),
            "wallet_connects": asked.totals(("events",), (type_is("wallet_connect"),))["events"],
            "transactions": pairs(asked.breakdown("chain_status", most), ("chain_id", "status", "count"), int),
            "volume": pairs(asked.breakdown("chain_token", most), ("chain_id", "token", "volume"), as_money),
            "top_contracts": [{"address": v, "transactions": a} for v, a in asked.breakdown("contract_address", limit)],
            "top_wallets": [{"address": v, "transactions": a} for v, a in asked.breakdown("wallet_address", limit)],
            "verified": self.verified(asked.reader, span),
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
            "transactions": int(totals["verified_transactions"]),
            "by_state": pairs(
                reader.breakdown(span, "verified_transactions", "chain_state", most),
                ("chain_id", "state", "count"),
                int,
            ),
            "disagreements": int(totals["disagreements"]),
            "disagreements_by_state": pairs(
                reader.breakdown(span, "disagreements", "chain_state", most), ("chain_id", "state", "count"), int
            ),
            "volume": [row | {"symbol": symbols.get((row["chain_id"], row["token"]), "")} for row in volume],
        }


class Payments(AnalyticsResource):
    def compute(self, req: falcon.Request, asked: Asked, span: Range) -> dict:
        statuses = dict(asked.breakdown("payment_status", 100))
        started, completed = statuses.get("started", 0), statuses.get("completed", 0)
        return {
            "started": started,
            "completed": completed,
            "failed": statuses.get("failed", 0),
            "cancelled": statuses.get("cancelled", 0),
            "revenue": [{"currency": v, "amount": as_money(a)} for v, a in asked.breakdown("currency", 100)],
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
