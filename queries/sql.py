"""Turning a query's dimensions and filters into ClickHouse SQL over `events`, every value bound as a
parameter (never spliced into the text), every query scoped to one company's human events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from adtivity.settings import Settings
from models.events_table import COMPANY_HUMANS, unix_seconds
from models.segments import Segment
from queries.segments import segment_condition
from queries.spec import Condition, Filter, InSegment, Logical
from queries.vocabulary import DIMENSIONS, PROPERTY, TIME_DIMENSIONS, json_value, time_expression


class Compiler:
    """Builds conditions and expressions for one company's query, collecting their parameters."""

    def __init__(
        self,
        settings: Settings,
        now: dt.datetime,
        company_id: str,
        timezone: str = "UTC",
        segments: dict[str, Segment] | None = None,
    ) -> None:
        self.settings = settings
        self.now = now
        self.scope = COMPANY_HUMANS
        self.segments = segments or {}  # every segment the filters name (the engine resolves them)
        self.params: dict[str, Any] = {"company": company_id, "tz": timezone}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def dimension(self, name: str) -> str:
        if name in TIME_DIMENSIONS:
            return time_expression(name, "tz")
        if name.startswith(PROPERTY):
            return json_value("properties", [self.bind(key) for key in name[len(PROPERTY) :].split(".")])
        return DIMENSIONS[name]

    def condition_on(self, operator: str, expression: str, values: tuple[str, ...]) -> str:
        if operator in ("is", "is_not"):
            test = f"{expression} IN {self.bind(values)}"
        elif operator.startswith("contains"):
            test = "(" + " OR ".join(f"position({expression}, {self.bind(v)}) > 0" for v in values) + ")"
        else:
            test = "(" + " OR ".join(f"match({expression}, {self.bind(v)})" for v in values) + ")"
        return f"NOT ({test})" if operator.endswith("_not") else test

    def filter_condition(self, item: Filter) -> str:
        if isinstance(item, Condition):
            return self.condition_on(item.operator, self.dimension(item.dimension), item.values)
        if isinstance(item, InSegment):
            return segment_condition(self.segments[item.segment_id], self)
        assert isinstance(item, Logical)
        if item.operator == "not":
            return f"NOT ({self.filter_condition(item.children[0])})"
        joiner = " AND " if item.operator == "and" else " OR "
        return "(" + joiner.join(self.filter_condition(child) for child in item.children) + ")"

    def where(self, start: dt.datetime, end: dt.datetime, filters: tuple[Filter, ...]) -> str:
        """The company's human events in [start, end) that pass every filter."""
        first, last = self.bind(unix_seconds(start)), self.bind(unix_seconds(end))
        conditions = [self.scope, f"event_time >= toDateTime({first})", f"event_time < toDateTime({last})"]
        conditions.extend(self.filter_condition(item) for item in filters)
        return " AND ".join(conditions)
