"""The short form of the chaos suite (bench/chaos.py --short) as part of the tests: under load, SIGKILL
the worker, the streams process, a web worker and the scheduler; stop ClickHouse; freeze the broker;
SIGKILL and restart an append-only Redis. Afterwards every accepted event is in ClickHouse exactly
once, the rollups equal ClickHouse and the real-time counts equal it too. `make chaos` runs the long
form (3 rounds, 60 s outages) and records it in docs/reliability.md."""

from __future__ import annotations

import pytest

from tests.processes import run_bench_script

pytestmark = pytest.mark.processes


def test_crashes_and_outages_under_load_lose_nothing_and_count_nothing_twice():
    result = run_bench_script("chaos.py", "--short")
    assert result["actions"] == 7 and result["load"]["events_accepted"] > 10_000
    checks = result["checks"]
    assert checks["clickhouse_exactly_once"] and checks["rollups_equal_clickhouse"], checks["problems"]
    assert checks["realtime_drift_events"] == 0
    assert result["processes_exited_on_their_own"] == {}, "a process died of an outage instead of riding it out"
