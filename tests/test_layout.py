"""The layout's rules hold: domain packages and the shared layer import no process folder, no process
folder imports another, and importing a worker module sets nothing up."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.processes import ROOT

PROCESS_FOLDERS = ("web", "workers", "streams", "scheduler")
SHARED = ("adtivity", "models", "ingest", "accounts", "rollups", "queries")


def imported_packages(folder: str) -> dict[str, set[str]]:
    """Each module of `folder` with the top-level packages it imports (at any depth in the code)."""
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_shared_packages_import_no_process_folder():
    offending = {
        module: sorted(names & set(PROCESS_FOLDERS))
        for folder in SHARED
        for module, names in imported_packages(folder).items()
        if names & set(PROCESS_FOLDERS)
    }
    assert offending == {}


def test_no_process_folder_imports_another():
    offending = {
        module: sorted(names & (set(PROCESS_FOLDERS) - {folder}))
        for folder in PROCESS_FOLDERS
        for module, names in imported_packages(folder).items()
        if names & (set(PROCESS_FOLDERS) - {folder})
    }
    assert offending == {}


def test_importing_every_worker_module_configures_no_logging_and_binds_no_broker():
    probe = (
        "import logging, dramatiq.broker\n"
        "import workers.companies, workers.entities, workers.health, workers.housekeeping, workers.persist\n"
        "import workers.privacy, workers.retention, workers.rollups, workers.trim, workers.main\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "assert dramatiq.broker.global_broker is None\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
