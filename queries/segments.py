"""Saved segments: who is in one, checked when it is saved and evaluated in ClickHouse when a query,
a funnel or a retention table uses it (rules keep no stale copy of their members).

A segment is a rule or a static list. Rules (nest with "all" and "any"):
- `{"did": {"event": "Signup", "filters": [...], "min_times": 2, "date_range": "30d"}}`: people with at
  least `min_times` (default 1) events matching the name (optional) and the filters (the query's
  filter syntax, e.g. property conditions) in the date range (default "all");
- `{"did_not": {...}}`: the same, negated;
- `{"first_seen": {"date_range": "7d"}}`: people first seen in the range;
- `{"user_property": ["is", "plan", ["pro"]]}`: people identified with a matching trait (any operator
  of the query's filters);
- `{"all": [rule, ...]}`, `{"any": [rule, ...]}`.
Static lists hold user ids (`user_ids`) or wallet addresses (`wallets`, which stand for the people who
used them), at most SEGMENT_MAX_MEMBERS, as JSON lists or CSV text (one value a line; a header line
"user_id" or "wallet" is skipped).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from adtivity.errors import NotFound, Unprocessable
from adtivity.settings import Settings
from models.db import utcnow
from models.events_table import FIRST_SEEN, IDENTITY, PERSON, unix_seconds
from models.segments import Segment
from queries import spec
from queries.vocabulary import FILTER_OPERATORS, json_value

if TYPE_CHECKING:
    from queries.sql import Compiler

NAME_MAX_CHARS = 200
RULE_MAX_DEPTH = 4
RULE_MAX_PARTS = 20
RULE_KINDS = ("did", "did_not", "first_seen", "user_property", "all", "any")
EVENT_FIELDS = ("event", "filters", "min_times", "date_range")
UTC = ZoneInfo("UTC")  # rules' date ranges are in UTC days
EPOCH = dt.datetime(1970, 1, 1)  # where a rule's "all" date range begins


def wrong(part: str, message: str) -> Unprocessable:
    return Unprocessable("invalid_segment", f"{part}: {message}", details={"part": part})


# -- checking what is saved ------------------------------------------------------------------------


def check_rule(
    rule: Any, part: str, settings: Settings, now: dt.datetime, depth: int = 0, parts: list[int] | None = None
) -> None:
    """Raises Unprocessable naming the wrong part; compiling the rule (rule_condition) then cannot fail."""
    parts = [0] if parts is None else parts
    parts[0] += 1
    if parts[0] > RULE_MAX_PARTS or depth > RULE_MAX_DEPTH:
        raise wrong(part, f"a rule holds at most {RULE_MAX_PARTS} parts, nested at most {RULE_MAX_DEPTH} deep")
    if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in RULE_KINDS:
        raise wrong(part, f"must be an object with one of {', '.join(RULE_KINDS)}")
    kind, body = next(iter(rule.items()))
    here = f"{part}.{kind}"
    if kind in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise wrong(here, "must list at least one rule")
        for index, child in enumerate(body):
            check_rule(child, f"{here}[{index}]", settings, now, depth + 1, parts)
    elif kind == "user_property":
        if not (
            isinstance(body, list)
            and len(body) == 3
            and body[0] in FILTER_OPERATORS
            and isinstance(body[1], str)
            and body[1]
        ):
            raise wrong(
                here, f"must be [operator, trait key, [values]] with an operator of {', '.join(FILTER_OPERATORS)}"
            )
        spec.parse_values(body[2], f"{here}[2]", body[0], settings)
    else:
        if not isinstance(body, dict) or set(body) - set(EVENT_FIELDS):
            raise wrong(here, f"must be an object of {', '.join(EVENT_FIELDS)}")
        if kind == "first_seen" and set(body) - {"date_range"}:
            raise wrong(here, "takes only date_range")
        if "event" in body and (not isinstance(body["event"], str) or not body["event"]):
            raise wrong(f"{here}.event", "must be an event name")
        if "min_times" in body:
            spec.whole_number(body["min_times"], f"{here}.min_times", 1, 1_000_000)
        counter = [0]
        for index, item in enumerate(spec.list_of(body.get("filters", []), f"{here}.filters")):
            if isinstance(spec.parse_filter(item, f"{here}.filters[{index}]", settings, counter), spec.InSegment):
                raise wrong(f"{here}.filters[{index}]", "a rule cannot name another segment")
        spec.parse_date_range(body.get("date_range", "all"), UTC, now, settings)


def static_members(body: dict[str, Any], settings: Settings) -> tuple[list[str], list[str]]:
    """(user ids, wallets) of a static segment's body: JSON lists, or CSV text in the same fields."""
    found: dict[str, list[str]] = {}
    for name in ("user_ids", "wallets"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [row[0].strip() for row in csv.reader(io.StringIO(value)) if row and row[0].strip()]
            if value and value[0] in ("user_id", "wallet", "wallet_address"):
                value = value[1:]
        if not isinstance(value, list) or not all(isinstance(v, str) and v and len(v) <= 256 for v in value):
            raise wrong(name, "must list ids of 1 to 256 characters (a JSON list, or CSV text with one a line)")
        found[name] = list(dict.fromkeys(v.lower() if name == "wallets" else v for v in value))
    if len(found) != 1 or not next(iter(found.values())):
        raise wrong("body", 'a static segment lists "user_ids" or "wallets" (one of them, not empty)')
    members = next(iter(found.values()))
    if len(members) > settings.segment_max_members:
        raise wrong(next(iter(found)), f"a static segment holds at most {settings.segment_max_members} members")
    return found.get("user_ids", []), found.get("wallets", [])


def apply_body(segment: Segment, body: Any, settings: Settings, now: dt.datetime) -> None:
    """Checks a create (or whole-replace) body and sets the segment's fields from it."""
    if not isinstance(body, dict):
        raise wrong("body", "must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_CHARS:
        raise wrong("name", f"must be 1 to {NAME_MAX_CHARS} characters")
    kind = body.get("kind")
    if kind == "rule":
        if set(body) - {"name", "kind", "rule"}:
            raise wrong("body", "a rule segment has name, kind and rule")
        check_rule(body.get("rule"), "rule", settings, now)
        segment.rule, segment.user_ids, segment.wallets = body["rule"], [], []
    elif kind == "static":
        if set(body) - {"name", "kind", "user_ids", "wallets"}:
            raise wrong("body", "a static segment has name, kind and user_ids or wallets")
        segment.user_ids, segment.wallets = static_members(body, settings)
        segment.rule = None
    else:
        raise wrong("kind", 'must be "rule" or "static"')
    segment.name, segment.kind, segment.updated_at = name.strip(), kind, utcnow()


# -- the stored segments ---------------------------------------------------------------------------


def create_segment(
    company_id: uuid.UUID, body: Any, settings: Settings, now: dt.datetime, created_by: uuid.UUID | None
) -> Segment:
    segment = Segment(company=company_id, created_by=created_by)
    apply_body(segment, body, settings, now)
    segment.save(force_insert=True)
    return segment


def company_segment(company_id: uuid.UUID, segment_id: str) -> Segment:
    try:
        wanted = uuid.UUID(segment_id)
    except ValueError:
        raise NotFound("not_found", "segment not found") from None
    segment: Segment | None = Segment.get_or_none((Segment.id == wanted) & (Segment.company == company_id))
    if segment is None:
        raise NotFound("not_found", "segment not found")
    return segment


def list_segments(company_id: uuid.UUID) -> list[Segment]:
    return list(Segment.select().where(Segment.company == company_id).order_by(Segment.created_at, Segment.id))


def replace_segment(company_id: uuid.UUID, segment_id: str, body: Any, settings: Settings, now: dt.datetime) -> Segment:
    segment = company_segment(company_id, segment_id)
    apply_body(segment, body, settings, now)
    segment.save()
    return segment


def delete_segment(company_id: uuid.UUID, segment_id: str) -> None:
    company_segment(company_id, segment_id).delete_instance()


def describe(segment: Segment) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": str(segment.id),
        "name": segment.name,
        "kind": segment.kind,
        "created_at": segment.created_at.replace(tzinfo=dt.UTC).isoformat(),
        "updated_at": segment.updated_at.replace(tzinfo=dt.UTC).isoformat(),
    }
    if segment.kind == "rule":
        shown["rule"] = segment.rule
    else:
        shown["user_ids" if segment.user_ids else "wallets"] = list(segment.user_ids or segment.wallets)
    return shown


# -- evaluating: SQL over `events` -----------------------------------------------------------------


def segment_condition(segment: Segment, compiler: Compiler) -> str:
    """A condition on an event's person that holds for the segment's members: a static list's user ids
    by IDENTITY, every other segment by the PERSON hash (8 bytes a row to read instead of two strings)."""
    if segment.kind == "static":
        if segment.user_ids:
            return f"({IDENTITY} IN {compiler.bind(tuple(segment.user_ids))})"
        people = (
            f"SELECT DISTINCT {PERSON} FROM events WHERE {compiler.scope} "
            f"AND lower(wallet_address) IN {compiler.bind(tuple(segment.wallets))}"
        )
        return f"({PERSON} IN ({people}))"
    return rule_condition(segment.rule, compiler)


def rule_condition(rule: dict[str, Any], compiler: Compiler) -> str:
    kind, body = next(iter(rule.items()))
    if kind in ("all", "any"):
        joiner = " AND " if kind == "all" else " OR "
        return "(" + joiner.join(rule_condition(child, compiler) for child in body) + ")"
    if kind == "user_property":  # a trait as identify calls carry it (the key taken whole, dots and all)
        operator, key, values = body
        trait = compiler.condition_on(operator, json_value("traits", [compiler.bind(key)]), tuple(values))
        people = f"SELECT DISTINCT {PERSON} FROM events WHERE {compiler.scope} AND traits != '{{}}' AND {trait}"
        return f"({PERSON} IN ({people}))"
    start, end = spec.parse_date_range(body.get("date_range", "all"), UTC, compiler.now, compiler.settings)
    start = start or EPOCH
    if kind == "first_seen":
        first, last = compiler.bind(unix_seconds(start)), compiler.bind(unix_seconds(end))
        people = (
            f"SELECT cityHash64(identity) FROM ({FIRST_SEEN}) "
            f"WHERE first >= toDateTime({first}) AND first < toDateTime({last})"
        )
        return f"({PERSON} IN ({people}))"
    counter = [0]
    filters = tuple(
        spec.parse_filter(item, f"filters[{index}]", compiler.settings, counter)
        for index, item in enumerate(body.get("filters", []))
    )
    events = compiler.where(start, end, filters)
    if "event" in body:
        events += f" AND name = {compiler.bind(body['event'])}"
    people = (
        f"SELECT {PERSON} AS who FROM events WHERE {events} "
        f"GROUP BY who HAVING count() >= {int(body.get('min_times', 1))}"
    )
    return f"({PERSON} {'NOT IN' if kind == 'did_not' else 'IN'} ({people}))"
