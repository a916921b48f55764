"""Exactly once at any size: a filter in Redis, per stream shard, of the (company, message id) pairs
stored in the de-duplication window, in front of the exact store (ClickHouse's `event_ids`).

The persist pump asks the filter about every id of a batch before it stores it (filter.py): an id
the filter has never seen is new for certain and costs nothing more; only the few it may have seen
(a resend, or a false positive) are looked up exactly. A filter that is lost, evicted, resized or
younger than the window says "maybe" for every id, so the pump falls back to the exact look-up for
all of them and never counts twice; `python -m adtivity rebuild-dedup` (rebuild.py) fills it from
ClickHouse so the fallback ends at once instead of after a window.
"""
