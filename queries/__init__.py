"""The query engine every analytics read can go through: a query (metrics, a date range, dimensions,
filters and saved segments, in the shape of Plausible's Stats API v2) is checked (spec.py), answered
from the rollups when they hold it exactly (rollup_source.py, over rollup_reader.py) or else from
ClickHouse (clickhouse_source.py), and cached by the rollups' version (engine.py). Saved segments
(segments.py) are rules evaluated in ClickHouse at query time, or static lists."""
