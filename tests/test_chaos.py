"""The short form of the chaos suite (bench/chaos.py --short) as part of the tests: under load, SIGKILL
the worker, the streams process, a web worker and the scheduler; stop ClickHouse; freeze the broker;
SIGKILL and restart an append-only Redis. Afterwards every accepted event is in ClickHouse exactly
once, the rollups equal ClickHouse and the real-time counts equal it too. `make chaos` runs the long
form (3 rounds, 60 s outages) and records it in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.processes


def test_crashes_and_outages_under_load_lose_nothing_and_count_nothing_twice():
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = finished.stdout
    assert finished.returncode == 0, output[-3000:] + finished.stderr[-3000:]
    result = json.loads(output[output.index("\n{") + 1 :])
    assert result["actions"] == 7 and result["load"]["events_accepted"] > 10_000
    checks = result["checks"]
    assert checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"], checks["problems"]
    assert checks["realtime_drift_events"] == 0
    assert result["processes_exited_on_their_own"] == {}, "a process died of an outage instead of riding it out"
