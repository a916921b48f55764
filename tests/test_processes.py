"""The four Procfile processes start on the real services, log a structured "ready" line, do
their first work, and stop cleanly on SIGTERM."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import urllib.request

from models import redis_keys
from tests.test_system import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.processes


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class Process:
    """One Procfile process, its output collected line by line as it comes."""

    def __init__(self, name: str, command: str, env: dict) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(shlex.split(command), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready_lines(self) -> list[dict]:
        records = []
        for line in self.lines:
            if line.startswith("{"):
                record = json.loads(line)
                if record["msg"] == "ready":
                    records.append(record)
        return records


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_all_four_processes_start_work_and_stop_cleanly(settings):
    assert set(procfile()) == {"web", "worker", "streams", "scheduler"}
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_WORKERS": "2", "HEALTH_CHECK_SECONDS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = {name: Process(name, command, env) for name, command in procfile().items()}
    try:
        for process in processes.values():
            wait_for(lambda p=process: p.ready_lines() or p.popen.poll() is not None, 60, f"{process.name} ready")
            assert process.ready_lines(), f"{process.name} exited:\n" + "\n".join(process.lines[-30:])
            assert process.ready_lines()[0]["process"] == process.name

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
            ready = json.loads(answer.read())
        assert ready["status"] == "ready" and all(d["up"] for d in ready["dependencies"].values())

        client = redis.Redis.from_url(settings.redis_url)
        # The scheduler enqueued the health check, the worker ran it, the streams process beats.
        wait_for(lambda: client.get(redis_keys.HEALTH_STATUS), 20, "a health check result")
        status = json.loads(client.get(redis_keys.HEALTH_STATUS))
        assert set(status["dependencies"]) == {"postgres", "redis", "clickhouse", "broker"}
        wait_for(lambda: client.get(redis_keys.process_heartbeat("streams")), 20, "a streams heartbeat")
        wait_for(lambda: client.get(redis_keys.process_heartbeat("scheduler")), 20, "a scheduler heartbeat")
    finally:
        for process in processes.values():
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        exits = {}
        for name, process in processes.items():
            try:
                exits[name] = process.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                exits[name] = "killed after 20 s"
    assert exits == {"web": 0, "worker": 0, "streams": 0, "scheduler": 0}, {
        name: processes[name].lines[-15:] for name, code in exits.items() if code != 0
    }
