"""The short form of the cluster chaos run (bench/cluster_chaos.py --short): under load through both
web processes, SIGKILL a Redis master, stop and start a ClickHouse replica, SIGKILL one process of
each kind. Every accepted event is in ClickHouse exactly once, rollups and real-time equal it, and
every part of the cluster is up afterwards."""

from __future__ import annotations

import pytest

from tests.processes import run_bench_script

pytestmark = pytest.mark.cluster


def test_failovers_and_crashes_on_the_cluster_lose_nothing_and_count_nothing_twice(cluster):
    result = run_bench_script("cluster_chaos.py", "--short")
    assert len(result["actions"]) == 6 and result["parts_down_afterwards"] == []
    checks = result["checks"]
    assert checks["events_checked"] > 20_000
    assert checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"], checks["problems"]
    assert checks["realtime_drift_events"] == 0
