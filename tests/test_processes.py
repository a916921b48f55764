"""The four Procfile processes start on the real services, log a structured "ready" line, do
their first work, and stop cleanly on SIGTERM."""
from __future__ import annotations

import http.client
import json
import os
import urllib.request

import pytest
import redis

from models import redis_keys
from tests.processes import Process, free_port, process_env, procfile, wait_for

pytestmark = pytest.mark.processes


def test_all_four_processes_start_work_and_stop_cleanly(settings):
    assert set(procfile()) == {"web", "worker", "streams", "scheduler"}
    port = free_port()
    metrics = {name: free_port() for name in ("worker", "streams", "scheduler")}
    env = process_env(PORT=str(port), WEB_WORKERS="2", HEALTH_CHECK_SECONDS="1",
                      **{f"{name.upper()}_METRICS_PORT": str(number) for name, number in metrics.items()})
    processes = {name: Process(name, env) for name in procfile()}
    try:
        for process in processes.values():
            process.wait_ready()
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

        # Every process serves Prometheus metrics; the worker's include what the health check measured.
        def scraped(name: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics[name]}/metrics", timeout=5) as answer:
                return answer.read().decode()

        wait_for(lambda: "adtivity_stream_backlog_entries{" in scraped("worker"), 20, "stream backlogs in the worker's metrics")
        assert "adtivity_pump_batch_seconds" in scraped("worker")
        assert "adtivity_realtime_messages_total" in scraped("streams")
        wait_for(lambda: 'adtivity_scheduler_jobs_total{job="enqueue_health_check"}' in scraped("scheduler"), 20,
                 "scheduled jobs in the scheduler's metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"adtivity_http_requests_total" in answer.read()
    finally:
        exits = {name: process.stop() for name, process in processes.items()}
    assert exits == {"web": 0, "worker": 0, "streams": 0, "scheduler": 0}, {
        name: processes[name].lines[-15:] for name, code in exits.items() if code != 0
    }


def test_the_worker_has_a_thread_for_other_jobs_beside_every_pump(settings):
    """Each shard keeps a persist and an entities pump running; health checks, purges and trims need
    threads too."""
    arguments = procfile()["worker"].split()
    threads = int(arguments[arguments.index("--threads") + 1])
    assert threads > 2 * settings.stream_shards


def test_the_web_process_closes_a_kept_alive_connection_after_its_request_limit():
    """So that connections a client opened at once do not all stay on one worker for good."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="1", WEB_KEEPALIVE_REQUESTS="3"))
    try:
        web.wait_ready()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        answers = []
        for _ in range(3):
            connection.request("GET", "/health")
            answer = connection.getresponse()
            answer.read()
            answers.append((answer.status, answer.getheader("Connection")))
            if answer.will_close:
                break
        assert answers == [(200, "keep-alive"), (200, "keep-alive"), (200, "close")]
        connection.close()
    finally:
        assert web.stop() == 0


def listening_sockets(pid: int, port: int) -> set[str]:
    """The socket inodes of process `pid` that listen on `port` (IPv4)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return {row[9] for row in rows if row[3] == "0A" and int(row[1].split(":")[1], 16) == port and row[9] in inodes}


@pytest.mark.parametrize("reuse_port", [True, False])
def test_each_web_worker_listens_on_its_own_socket_unless_turned_off(reuse_port):
    """With a socket each (SO_REUSEPORT) the kernel spreads connections over the workers; with one
    shared socket, one worker under load can hold most of them (bench/ingest.py)."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="2", WEB_REUSE_PORT=str(reuse_port).lower()))
    try:
        web.wait_ready()
        with open(f"/proc/{web.popen.pid}/task/{web.popen.pid}/children") as children:
            workers = [int(pid) for pid in children.read().split()]
        sockets = [listening_sockets(pid, port) for pid in workers]
        assert len(workers) == 2 and all(len(owned) == 1 for owned in sockets)
        assert (sockets[0] != sockets[1]) is reuse_port
    finally:
        assert web.stop() == 0
