"""Checks on JSON text that a decoder does not make: how deep it nests, and NUL characters (Postgres
text cannot store one). Shared by the web's API bodies and ingest's events."""

from __future__ import annotations

import re

import msgspec

from adtivity.errors import InvalidInput

_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[][{}]')


def nests_deeper_than(raw: bytes | bytearray | memoryview | msgspec.Raw, limit: int) -> bool:
    """Whether the JSON text `raw` nests objects and arrays more than `limit` levels deep. Counting
    brackets is an upper bound that settles nearly every case at C speed; only text with more
    brackets than `limit` is scanned (strings skipped). `raw` may be any bytes-like object
    (msgspec.Raw: an event cut from a batch)."""
    raw = bytes(raw)  # a bytes object as it is, without a copy
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    depth = 0
    for token in _STRING_OR_BRACKET.findall(raw):
        if token in b"{[":
            depth += 1
            if depth > limit:
                return True
        elif token in b"}]":
            depth -= 1
    return False


def too_deep(limit: int) -> InvalidInput:
    return InvalidInput("invalid_json", f"objects and arrays may nest at most {limit} levels deep")


def has_nul(value: object) -> bool:
    """Whether a decoded JSON value holds a NUL anywhere."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False
