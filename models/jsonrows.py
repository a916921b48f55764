"""Rows for Postgres as one JSON array, which a statement unpacks with jsonb_array_elements: the
entities pump's upserts and the chain verifier's writes use it (docs/performance-notes.md: it costs
about 1 us a row where psycopg2 quoting each value took 25)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_json = msgspec.json.Encoder()
# A NUL escape in msgspec's JSON: "\u0000" after an even number of backslashes (an odd number would
# make it the text "\u0000", which is kept).
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def rows_json(rows: list[Any]) -> str:
    """The rows as one JSON array for jsonb_array_elements. Times are UTC, written with a "Z" that a
    cast to Postgres's timestamp (without time zone) ignores. Postgres text and jsonb cannot hold NUL:
    each becomes U+FFFD (ClickHouse keeps the event verbatim). Without this, one such event would
    fail its whole batch's entities again and again. The regular expression only runs on the rare
    batch that holds the escape at all: it tries a match at every byte, about 16 us a row, and
    was the largest share of the worker's CPU under load."""
    encoded = _json.encode(rows)
    if b"\\u0000" in encoded:
        encoded = _NUL_ESCAPE.sub(rb"\1\\ufffd", encoded)
    return encoded.decode()
