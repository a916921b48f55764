"""Fixtures of the cluster tests (`make cluster-test`): the settings of the cluster `bin/cluster up`
started (its .data/cluster/env), and the addresses of its two web processes. The single-node
fixtures of tests/conftest.py stay available, for answers to compare with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from adtivity.settings import Settings

ENV_FILE = Path(__file__).resolve().parents[2] / ".data" / "cluster" / "env"
WEB = ("http://127.0.0.1:8100", "http://127.0.0.1:8101")


def pytest_collection_modifyitems(config, items):
    """Without `make cluster-test` (which starts the cluster and sets ADTIVITY_CLUSTER_TESTS), these
    tests are skipped rather than failing against a cluster nobody started."""
    if os.environ.get("ADTIVITY_CLUSTER_TESTS"):
        return
    skip = pytest.mark.skip(reason="cluster tests run with `make cluster-test`")
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster() -> Settings:
    environ = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    for base in WEB:
        assert requests.get(f"{base}/ready", timeout=5).status_code == 200, f"{base} is not ready"
    return Settings.from_env(environ)
