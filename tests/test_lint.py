"""pyflakes over the project: no undefined names, unused imports or variables slip in."""
from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT

PACKAGES = ["adtivity", "models", "web", "workers", "scheduler", "streams", "bench", "tests"]


def test_pyflakes_finds_nothing():
    found = subprocess.run([sys.executable, "-m", "pyflakes", *PACKAGES], cwd=ROOT, capture_output=True, text=True)
    # workers/__init__.py imports its actor modules only to declare them.
    problems = [line for line in found.stdout.splitlines() if not line.startswith("workers/__init__.py")]
    assert problems == []
