"""The short form of the cluster chaos run (bench/cluster_chaos.py --short): under load through both
web processes, SIGKILL a Redis master, stop and start a ClickHouse replica, SIGKILL one process of
each kind. Every accepted event is in ClickHouse exactly once, rollups and real-time equal it, and
every part of the cluster is up afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.cluster


def test_failovers_and_crashes_on_the_cluster_lose_nothing_and_count_nothing_twice(cluster):
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cluster_chaos.py"), "--short"],
        cwd=ROOT / "bench",
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = finished.stdout
    assert finished.returncode == 0, output[-3000:] + finished.stderr[-3000:]
    result = json.loads(output[output.index("\n{") + 1 :])
    assert len(result["actions"]) == 6 and result["parts_down_afterwards"] == []
    checks = result["checks"]
    assert checks["events_checked"] > 20_000
    assert checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"], checks["problems"]
    assert checks["realtime_drift_events"] == 0
