"""`/v1/companies/{id}/drilldowns/...`: questions the rollups cannot answer, asked of ClickHouse with
the company's filter in every query, at most DRILLDOWN_MAX_ROWS rows back and QUERY_TIMEOUT_SECONDS
each. Members of any role or a read key may ask. Bots are left out, as in every metric.

`segment=<id>` narrows the funnel and the retention table to a saved segment's people.

- `funnel?steps=Signup,page:/pricing,transaction:confirmed&window=86400`: people (user or anonymous id)
  who did the steps in order within the window, step by step (ClickHouse's windowFunnel); a
  `transaction:<state>` step is a transaction the chain gives that state (confirmed: final on chain);
- `retention`: weekly cohorts by the week people were first seen, and how many came back each week after;
- `wallets/{address}` and `contracts/{address}`: a wallet's or a contract's activity;
- `users/{user_id}/timeline`: a user's events, newest first (the events API filtered to the user).
"""

from __future__ import annotations

import datetime as dt

import falcon

from adtivity.settings import Settings
from models.chain import hashes_in_state
from models.clickhouse import ClientPool
from models.events_table import COMPANY_HUMANS, FIRST_SEEN, IDENTITY, unix_seconds
from queries.segments import company_segment, segment_condition
from queries.sql import Compiler
from web.errors import ApiError
from web.principals import company_id_access
from web.resources.analytics import bad, iso, parse_range
from web.resources.events import Events

STEP_KINDS = {
    "page": "type = 'page' AND page_path = %({p})s",
    "type": "type = %({p})s",
    # What the chain says of the transaction (`transaction:confirmed`: final on chain, docs/web3.md).
    "transaction": "type = 'transaction' AND (chain_id, lower(tx_hash)) GLOBAL IN " + hashes_in_state("%({p})s"),
}
RETENTION_WEEKS = 12


def step_condition(step: str, index: int, params: dict) -> str:
    """`page:/path`, `type:<event type>`, `transaction:<verified state>`, or an event name."""
    kind, _, value = step.partition(":")
    name = f"step{index}"
    if kind in STEP_KINDS and value:
        params[name] = value
        return STEP_KINDS[kind].format(p=name)
    params[name] = step
    return f"name = %({name})s"


class Drilldown:
    def __init__(self, settings: Settings, clickhouse: ClientPool) -> None:
        self.settings = settings
        self.clickhouse = clickhouse

    def rows(self, query: str, params: dict) -> list:
        with self.clickhouse.client() as client:
            return client.query(
                query,
                parameters=params,
                settings={
                    "max_execution_time": self.settings.query_timeout_seconds,
                    "max_result_rows": self.settings.drilldown_max_rows,
                    "result_overflow_mode": "break",
                },
            ).result_rows

    def scope(self, req: falcon.Request, company_id: str) -> tuple[str, dict, str]:
        """(the company's human events of the range, their parameters, the segment's condition: "" or
        " AND ..." when `segment` names one, already part of the first)."""
        company = company_id_access(req, company_id, min_role="viewer", read_key=True)
        span = parse_range(req, self.settings)
        params = {
            "company": str(company),
            "start": unix_seconds(span.start),
            "end": unix_seconds(span.end),
        }
        where = f"{COMPANY_HUMANS} AND event_time >= toDateTime(%(start)s) AND event_time < toDateTime(%(end)s)"
        people = ""
        segment_id = req.get_param("segment")
        if segment_id:  # only the segment's people (queries/segments.py)
            compiler = Compiler(self.settings, dt.datetime.now(dt.UTC), str(company))
            people = " AND " + segment_condition(company_segment(company, segment_id), compiler)
            params |= {name: value for name, value in compiler.params.items() if name not in ("company", "tz")}
        return where + people, {**params, "from": iso(span.start), "to": iso(span.end)}, people


class Funnel(Drilldown):
    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        where, params, _ = self.scope(req, company_id)
        steps = [step.strip() for step in (req.get_param("steps") or "").split(",") if step.strip()]
        if not 2 <= len(steps) <= self.settings.drilldown_max_steps:
            raise bad("steps", f"give 2 to {self.settings.drilldown_max_steps} comma-separated steps")
        window = req.get_param_as_int("window", min_value=1, max_value=90 * 86400) or 86400
        conditions = ", ".join(step_condition(step, i, params) for i, step in enumerate(steps))
        reached = dict(
            self.rows(
                f"SELECT level, count() FROM (SELECT {IDENTITY} AS who, windowFunnel({window})(event_time, {conditions}) AS level "
                f"FROM events WHERE {where} GROUP BY who) WHERE level > 0 GROUP BY level",
                params,
            )
        )
        counts = [sum(n for level, n in reached.items() if level >= k) for k in range(1, len(steps) + 1)]
        resp.media = {
            "from": params["from"],
            "to": params["to"],
            "window_seconds": window,
            "steps": [
                {
                    "step": step,
                    "people": n,
                    "conversion_from_first": round(n / counts[0], 4) if counts[0] else None,
                    "conversion_from_previous": round(n / counts[i - 1], 4) if i and counts[i - 1] else None,
                }
                for i, (step, n) in enumerate(zip(steps, counts, strict=False))
            ],
        }


class Retention(Drilldown):
    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        _, params, segment = self.scope(req, company_id)
        rows = self.rows(
            "SELECT cohort, intDiv(toUInt32(week - cohort), 7) AS offset, uniqExact(who) FROM ("
            f"  SELECT identity AS who, toMonday(first) AS cohort FROM ({FIRST_SEEN})"
            "  WHERE first >= toDateTime(%(start)s) AND first < toDateTime(%(end)s)"
            ") AS cohorts ALL INNER JOIN ("
            f"  SELECT DISTINCT {IDENTITY} AS who, toMonday(event_time) AS week FROM events WHERE {COMPANY_HUMANS}"
            f"   AND event_time >= toDateTime(%(start)s){segment}"
            f") AS weeks USING who WHERE offset <= {RETENTION_WEEKS} GROUP BY cohort, offset ORDER BY cohort, offset",
            params,
        )
        cohorts: dict[dt.date, list[int]] = {}
        for cohort, offset, people in rows:
            cohorts.setdefault(cohort, [0] * (RETENTION_WEEKS + 1))[offset] = people
        resp.media = {
            "from": params["from"],
            "to": params["to"],
            "cohorts": [
                {
                    "week": week.isoformat(),
                    "people": counts[0],
                    "returning": [
                        {"week": k, "people": n, "rate": round(n / counts[0], 4) if counts[0] else None}
                        for k, n in enumerate(counts)
                        if k and k <= (dt.date.today() - week).days // 7
                    ],
                }
                for week, counts in sorted(cohorts.items())
            ],
        }


class Activity(Drilldown):
    """A wallet's (`column` wallet_address) or a contract's (`column` contract_address) activity."""

    column = "wallet_address"

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, address: str) -> None:
        where, params, _ = self.scope(req, company_id)
        if not address or len(address) > 256:
            raise ApiError(400, "invalid_parameter", "address must be 1 to 256 characters")
        params["address"] = address.lower()
        mine = f"{where} AND lower({self.column}) = %(address)s"
        summary = self.rows(
            f"SELECT count(), min(event_time), max(event_time), uniqExact({IDENTITY}), "
            f"uniqExact(lower(wallet_address)), sum(tx_value_num) FROM events WHERE {mine}",
            params,
        )[0]
        by_kind = self.rows(
            f"SELECT type, chain_id, status, count() FROM events WHERE {mine} "
            "GROUP BY type, chain_id, status ORDER BY count() DESC",
            params,
        )
        limit = req.get_param_as_int("limit", min_value=1, max_value=self.settings.drilldown_max_rows) or 50
        recent = self.rows(
            f"SELECT event_time, type, name, chain_id, tx_hash, contract_address, lower(wallet_address), "
            f"status, tx_value, token, {IDENTITY} FROM events WHERE {mine} "
            f"ORDER BY event_time DESC, message_id DESC LIMIT {limit}",
            params,
        )
        events, first, last, people, wallets, volume = summary
        resp.media = {
            "address": params["address"],
            "from": params["from"],
            "to": params["to"],
            "events": events,
            "first_seen": iso(first) if events else None,
            "last_seen": iso(last) if events else None,
            "people": people,
            "wallets": wallets,
            "volume": volume,
            "by_kind": [{"type": t, "chain_id": c, "status": s, "count": n} for t, c, s, n in by_kind],
            "recent": [
                dict(
                    zip(
                        (
                            "event_time",
                            "type",
                            "name",
                            "chain_id",
                            "tx_hash",
                            "contract_address",
                            "wallet_address",
                            "status",
                            "tx_value",
                            "token",
                            "user",
                        ),
                        row,
                        strict=False,
                    )
                )
                | {"event_time": iso(row[0])}
                for row in recent
            ],
        }


class ContractActivity(Activity):
    column = "contract_address"


class UserTimeline(Events):
    """The events API with its `user` filter set from the path."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str, user_id: str) -> None:
        req.params["user"] = user_id
        super().on_get(req, resp, company_id)
