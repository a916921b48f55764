"""The process harness of the tests and the benchmarks (bench/ imports it): free ports, the Procfile's
commands, waiting for a condition, and starting, signalling and stopping processes by process group."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def server_env() -> dict:
    """The environment for a server a test starts (a Redis of its own): the real clock, as the shared
    services keep, without `make test-shifted`'s libfaketime (redis-server cannot start under it)."""
    return {
        name: value for name, value in os.environ.items() if name != "LD_PRELOAD" and not name.startswith("FAKETIME")
    }


def procfile_command(name: str) -> list[str]:
    return shlex.split(procfile()[name])


def process_env(**overrides: str) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **overrides}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def wait_for(
    condition, seconds: float, what: str, interval: float = 0.1, *, tolerate: tuple[type[Exception], ...] = ()
) -> None:
    """Polls `condition` until it is true; an exception of a `tolerate` type counts as not yet (a
    service coming back may refuse for a moment). AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except tolerate:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def stop_groups(popens: list[subprocess.Popen], seconds: float = 20) -> None:
    """SIGTERM to each running process's group at once, then SIGKILL to any group still running after
    `seconds` (a stop takes as long as the slowest, not the sum)."""
    for popen in popens:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGTERM)
    for popen in popens:
        try:
            popen.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)


# Set by tests/conftest.py for each test: whether it carries the `processes` marker (so `make test-fast`,
# which leaves those out, never starts one).
MARKED = {"processes": False}


class Process:
    """One Procfile process in its own process group, its output collected line by line. Only a test
    marked `processes` may start one."""

    def __init__(self, name: str, env: dict) -> None:
        assert MARKED["processes"], "a test that starts the Procfile's processes needs @pytest.mark.processes"
        self.name = name
        self.env = env
        self.lines: list[str] = []
        self.start()

    def start(self) -> None:
        self.lines.clear()
        self.popen = subprocess.Popen(
            procfile_command(self.name),
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.popen,), daemon=True).start()

    def _read(self, popen: subprocess.Popen) -> None:
        for line in popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready_lines(self) -> list[dict]:
        records = []
        for line in list(self.lines):
            if line.startswith("{"):
                record = json.loads(line)
                if record["msg"] == "ready":
                    records.append(record)
        return records

    def wait_ready(self, seconds: float = 60) -> None:
        wait_for(lambda: self.ready_lines() or self.popen.poll() is not None, seconds, f"{self.name} ready")
        assert self.ready_lines(), f"{self.name} exited:\n" + "\n".join(self.lines[-30:])

    def kill(self) -> None:
        """SIGKILL to the whole group: no clean-up runs, as in a crash."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as honcho sends on Ctrl-C: the process stops gracefully."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, seconds: float = 20) -> int | str:
        """Terminates the process and waits for it to exit (see `exit_code`)."""
        self.terminate()
        return self.exit_code(seconds)

    def exit_code(self, seconds: float) -> int | str:
        """Waits for the process to exit, SIGKILL after `seconds`: its exit code, or why it has none.
        Sends no signal before that: a second SIGTERM tells dramatiq to kill its workers at once."""
        try:
            return self.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return f"killed after {seconds} s"


@contextlib.contextmanager
def running_system(names: tuple[str, ...], **env: str):
    """The Procfile's `names` on a free port with quick pump settings, each ready: yields (base URL,
    processes by name). Stops every one it started, even when a later one fails to start."""
    port = free_port()
    environment = process_env(
        PORT=str(port),
        WEB_WORKERS="2",
        PERSIST_CLAIM_IDLE_SECONDS="4",
        PERSIST_PUMP_SECONDS="3",
        PERSIST_ENSURE_SECONDS="1",
        PERSIST_BATCH_SECONDS="0.2",
        HEALTH_CHECK_SECONDS="30",
        **env,
    )
    processes: dict[str, Process] = {}
    try:
        for name in names:
            processes[name] = Process(name, environment)
        for process in processes.values():
            process.wait_ready()
        yield f"http://127.0.0.1:{port}", processes
    finally:
        stop_all(processes)


def stop_all(processes: dict[str, Process], seconds: float = 20) -> dict[str, int | str]:
    """Stops every process at once (a stop then takes as long as the slowest, not the sum): each
    one's exit code, or why it has none."""
    for process in processes.values():
        process.terminate()
    return {name: process.exit_code(seconds) for name, process in processes.items()}


def run_bench_script(name: str, *args: str, timeout: float = 900) -> dict:
    """Runs bench/<name> (e.g. a chaos run's short form) and returns the JSON document it prints
    last; fails the test, with the script's last output, when it exits non-zero."""
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        cwd=ROOT / "bench",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = finished.stdout
    assert finished.returncode == 0, output[-3000:] + finished.stderr[-3000:]
    return json.loads(output[output.index("\n{") + 1 :])
