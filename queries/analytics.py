"""The dashboards' figures (the analytics endpoints' bodies), each asked of the query engine
(queries/engine.py): the rollups answer what they hold exactly, with the hours after their watermark
counted from ClickHouse, and ClickHouse the rest, so every figure counts the events accepted up to the
moment it was asked. Read from the rollups alone (queries/rollup_reader.py): active users (distinct
counts over sliding windows merged from daily sketches: estimates), what the chain says of reported
transactions (the verifier's results) and the bots' events left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from queries.clickhouse_source import money
from queries.engine import QueryEngine, iso
from queries.rollup_reader import Range, RollupReader, advance
from queries.rollup_source import ADDITIVE
from queries.spec import Condition, Filter, fixed_query


def type_is(*types: str) -> Condition:
    return Condition("is", "event:type", types)


TRANSACTIONS = (type_is("transaction"),)
# Breakdown dimension -> (the metric it breaks down, the engine's dimensions, filters narrowing the
# events to those the dimension describes). A pair of dimensions answers "first|second" values.
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


def change(value: float | None, previous: float | None) -> float | None:
    if value is None or previous is None or not previous:
        return None
    return round((float(value) - float(previous)) / float(previous), 4)


def bucket_label(bucket: dt.datetime, interval: str) -> str:
    """A local bucket's start as the engine labels its time dimension."""
    return bucket.strftime("%Y-%m-%d %H:00:00") if interval == "hour" else bucket.date().isoformat()


def as_money(amount: Any) -> str:
    """Money as exact decimal text, as the rollups keep it."""
    return money(Decimal(str(amount)))


def pairs(
    rows: Iterable[tuple[str, Any]], names: tuple[str, str, str], shape: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """Breakdown rows whose value joins two fields with "|" (chain and status, chain and token)."""
    return [dict(zip(names, (*value.partition("|")[::2], shape(amount)), strict=False)) for value, amount in rows]


class Asked:
    """One answer's questions to the engine, over the range asked unless told: their rows, and
    whether every one of them is settled (ends before the rollups' watermark)."""

    def __init__(self, engine: QueryEngine, company_id: str, span: Range) -> None:
        self.engine = engine
        self.company_id = company_id
        self.span = span
        self.reader = RollupReader(company_id, engine.settings.rollup_hll_lg_k)
        self.as_of, self.complete_until = self.reader.state()  # one state for all the questions
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
        found = self.engine.evaluate(self.company_id, query, state=(self.as_of, self.complete_until))
        self.settled = self.settled and found.settled
        return found.rows.rows

    def totals(
        self, metrics: tuple[str, ...], filters: tuple[Filter, ...] = (), *, span: Range | None = None
    ) -> dict[str, Any]:
        """Metric -> its total. Without filters, the metrics the rollups hold exactly are asked apart
        from the others (which ClickHouse answers), so the rollups answer them."""
        groups = (
            [metrics] if filters else [tuple(m for m in metrics if (m in ADDITIVE) == held) for held in (True, False)]
        )
        found: dict[str, Any] = {}
        for group in groups:
            if group:
                [(_, values)] = self.rows(group, filters=filters, span=span)
                found |= dict(zip(group, values, strict=True))
        return {metric: found[metric] for metric in metrics}

    def breakdown(self, dimension: str, limit: int) -> list[tuple[str, Any]]:
        """(value, amount) of a BREAKDOWNS dimension's top `limit` values; a pair of dimensions joins its
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


def overview(asked: Asked) -> dict[str, Any]:
    before = asked.span.previous()
    current, previous = asked.totals(SUMMARY), asked.totals(SUMMARY, span=before)
    return {
        "previous": {"from": iso(before.start), "to": iso(before.end)},
        "metrics": {
            name: {"value": value, "previous": previous[name], "change": change(value, previous[name])}
            for name, value in current.items()
        },
    }


def time_series(asked: Asked, metric: str, interval: str) -> dict[str, Any]:
    """Points without gaps in the local buckets of the range (a metric of SERIES or RATIOS)."""
    span = asked.span
    buckets = span.local_buckets(interval)
    found = {
        values[0]: amounts[0] for values, amounts in asked.rows((metric,), (f"time:{interval}",), limit=len(buckets))
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


def breakdown(asked: Asked, dimension: str, limit: int) -> dict[str, Any]:
    metric = BREAKDOWNS[dimension][0]
    shape = as_money if metric in MONEY else (lambda amount: amount)
    return {
        "dimension": dimension,
        "metric": metric,
        "items": [{"value": value, "amount": shape(amount)} for value, amount in asked.breakdown(dimension, limit)],
    }


def active_users(asked: Asked) -> dict[str, Any]:
    """DAU, WAU and MAU for each local day of the range: distinct users of the day, of the 7 and of
    the 30 days ending with it, merged from the rollups' daily sketches (estimates)."""
    span, reader = asked.span, asked.reader
    wider = Range(span.start - dt.timedelta(days=29), span.end, span.tz)
    by_day = reader.sketches_by_bucket(wider, "users", "day")

    def users(last_day: dt.datetime, length: int) -> int:
        return reader.estimate(
            sketch for offset in range(length) for sketch in by_day.get(last_day - dt.timedelta(days=offset), ())
        )

    return {
        "estimated": True,  # merged sketches, unlike the engine's exact counts
        "points": [
            {"day": day.date().isoformat(), "dau": users(day, 1), "wau": users(day, 7), "mau": users(day, 30)}
            for day in span.local_buckets("day")
        ],
    }


def sessions(asked: Asked) -> dict[str, Any]:
    facts = asked.totals(("sessions", "bounce_rate", "avg_session_seconds", "users", "new_users"))
    return {
        "sessions": facts["sessions"],
        "bounce_rate": facts["bounce_rate"],
        "avg_session_seconds": facts["avg_session_seconds"],
        "sessions_per_user": round(facts["sessions"] / facts["users"], 4) if facts["users"] else None,
        "new_users": facts["new_users"],
        "returning_users": facts["users"] - facts["new_users"],
    }


def web3(asked: Asked, limit: int, most: int) -> dict[str, Any]:
    """Wallets, transactions and volume as the clients reported them (`limit` top contracts and wallets,
    `most` rows of the others), and `verified`, what the chain says of them."""
    wallets = asked.totals(("wallets",))["wallets"]
    previous = asked.totals(("wallets",), span=asked.span.previous())["wallets"]
    return {
        "wallets": wallets,
        "wallets_previous": previous,
        "wallets_change": change(wallets, previous),
        "wallet_connects": asked.totals(("events",), (type_is("wallet_connect"),))["events"],
        "transactions": pairs(asked.breakdown("chain_status", most), ("chain_id", "status", "count"), int),
        "volume": pairs(asked.breakdown("chain_token", most), ("chain_id", "token", "volume"), as_money),
        "top_contracts": [{"address": v, "transactions": a} for v, a in asked.breakdown("contract_address", limit)],
        "top_wallets": [{"address": v, "transactions": a} for v, a in asked.breakdown("wallet_address", limit)],
        "verified": verified(asked.reader, asked.span, most),
    }


def verified(reader: RollupReader, span: Range, most: int) -> dict[str, Any]:
    """What the chain says of the reported transactions (docs/web3.md), beside what clients said."""
    totals = reader.totals(span, ("verified_transactions", "disagreements"))
    volume = pairs(
        reader.breakdown(span, "verified_volume", "chain_token", most), ("chain_id", "token", "volume"), money
    )
    symbols = reader.token_symbols([(row["chain_id"], row["token"]) for row in volume if row["token"] != "native"])
    return {
        "transactions": int(totals["verified_transactions"]),
        "by_state": pairs(
            reader.breakdown(span, "verified_transactions", "chain_state", most), ("chain_id", "state", "count"), int
        ),
        "disagreements": int(totals["disagreements"]),
        "disagreements_by_state": pairs(
            reader.breakdown(span, "disagreements", "chain_state", most), ("chain_id", "state", "count"), int
        ),
        "volume": [row | {"symbol": symbols.get((row["chain_id"], row["token"]), "")} for row in volume],
    }


def payments(asked: Asked) -> dict[str, Any]:
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
            {"step": "completed", "count": completed, "conversion": round(completed / started, 4) if started else None},
        ],
    }
