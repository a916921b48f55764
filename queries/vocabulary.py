"""The names a query may use, and what each means over the ClickHouse `events` table.

Metrics count a company's human (non-bot) events of the slice: `users` are distinct people (user id,
else anonymous id), `new_users` those of them whose first event ever is in the slice (by time, a
person is new in the hour, day, week or month of their first event; filtered, when that first event
matches the filters), `returning_users` the rest, `wallets` distinct wallet addresses (lower case),
`sessions` distinct session ids, each counted as distinct 64-bit hashes of the values (cheaper than
keeping the strings; a person's is stored with each event, the `person` column; two of a million
people share a hash, and count once, with a chance of about 1 in 30 million); `payments` counts
payment events (any status); `bounce_rate` and `avg_session_seconds` measure each session by its
events in the slice (a bounce is a one-event session), as ratios; `volume` sums transaction values,
`revenue` completed payments (per currency when broken down by it); `conversion_rate` is the row's
users over all users of the date range (the share of people who did what the filters describe), a
ratio.

Dimensions: `time:hour|day|week|month` (local to the query's time zone; weeks begin on Monday),
event and page fields, campaign, place, device, web3 and payment fields (`transaction_status` is what
the client reported, `verification` what the chain says: models/chain.py), and `property:<key>` for
a top-level key of the event's properties (`property:a.b` for a nested one).
"""

from __future__ import annotations

from models.chain import verified_state
from models.events_table import FIRST_SEEN, PERSON

# (person, time) of each of the company's people's first human event (identity_first_seen).
FIRST_EVENTS = f"SELECT cityHash64(identity), first FROM ({FIRST_SEEN})"
USERS = f"uniqExactIf({PERSON}, {PERSON} != 0)"
NEW_USERS = f"uniqExactIf({PERSON}, {PERSON} != 0 AND ({PERSON}, event_time) IN ({FIRST_EVENTS}))"
# Metric -> its aggregate over the slice's events. Session ratios need the per-session pass.
AGGREGATES = {
    "events": "count()",
    "page_views": "countIf(type = 'page')",
    "users": USERS,
    "new_users": NEW_USERS,
    "returning_users": f"{USERS} - {NEW_USERS}",
    "wallets": "uniqExactIf(cityHash64(lower(wallet_address)), wallet_address != '')",
    "sessions": "uniqExactIf(cityHash64(session_id), session_id != '')",
    "transactions": "countIf(type = 'transaction')",
    "payments": "countIf(type = 'payment')",
    "volume": "sumIf(tx_value_num, type = 'transaction')",
    "revenue": "sumIf(amount, type = 'payment' AND status = 'completed')",
}
SESSION_RATIOS = ("bounce_rate", "avg_session_seconds")
METRICS = (*AGGREGATES, *SESSION_RATIOS, "conversion_rate")

TIME_DIMENSIONS = ("time:hour", "time:day", "time:week", "time:month")
# Dimension -> its expression; rows whose value is empty are left out of a breakdown.
DIMENSIONS = {
    "event:type": "type",
    "event:name": "name",
    "page_path": "page_path",
    "referrer_domain": "referrer_domain",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
    "country": "country",
    "region": "region",
    "city": "city",
    "browser": "browser",
    "os": "os",
    "device": "device",
    "chain": "chain_id",
    "token": "token",
    "contract": "lower(contract_address)",
    "wallet": "lower(wallet_address)",
    "transaction_status": "if(type = 'transaction', status, '')",
    "verification": verified_state(),
    "payment_status": "if(type = 'payment', status, '')",
    "currency": "currency",
}
PROPERTY = "property:"
PROPERTY_KEY_MAX = 200

FILTER_OPERATORS = ("is", "is_not", "contains", "contains_not", "matches", "matches_not")
LOGICAL_OPERATORS = ("and", "or", "not")


def time_expression(dimension: str, timezone: str) -> str:
    """The local hour, day, week (its Monday) or month an event falls in, as text ("2026-11-02" or
    "2026-11-02 13:00:00"); `timezone` is a checked IANA name, bound as a parameter by the caller."""
    local = "toTimeZone(event_time, %(tz)s)"
    return {
        "time:hour": f"toString(toStartOfHour({local}))",
        "time:day": f"toString(toDate({local}))",
        "time:week": f"toString(toMonday({local}))",
        "time:month": f"toString(toStartOfMonth({local}))",
    }[dimension]


def json_value(column: str, path: list[str]) -> str:
    """A value in a JSON text column as text (a string's characters, else its JSON: 42, true, {"a":1}),
    walking `path` (bound parameters, one a key) into nested objects. Works on ClickHouse 18.16
    (visitParam*) and current releases."""
    source = column
    for key in path[:-1]:
        source = f"visitParamExtractRaw({source}, {key})"
    text = f"visitParamExtractString({source}, {path[-1]})"
    return f"if({text} != '', {text}, visitParamExtractRaw({source}, {path[-1]}))"
