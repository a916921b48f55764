"""The four Procfile processes start on the real services, log a structured "ready" line, do
their first work, and stop cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import threading
import urllib.request
from urllib.parse import urlsplit
from xml.etree import ElementTree

import psycopg2
import pytest
import redis
import yaml

from adtivity.settings import Settings
from models import redis_keys
from tests.processes import ROOT, Process, free_port, process_env, procfile, stop_all, wait_for

pytestmark = pytest.mark.processes


def test_all_four_processes_start_work_and_stop_cleanly(settings):
    assert set(procfile()) == {"web", "worker", "streams", "scheduler"}
    port = free_port()
    metrics = {name: free_port() for name in ("worker", "streams", "scheduler")}
    env = process_env(
        PORT=str(port),
        WEB_WORKERS="2",
        HEALTH_CHECK_SECONDS="1",
        **{f"{name.upper()}_METRICS_PORT": str(number) for name, number in metrics.items()},
    )
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

        wait_for(
            lambda: "adtivity_stream_backlog_entries{" in scraped("worker"),
            20,
            "stream backlogs in the worker's metrics",
        )
        assert "adtivity_pump_batch_seconds" in scraped("worker")
        assert "adtivity_realtime_messages_total" in scraped("streams")
        wait_for(
            lambda: 'adtivity_scheduler_jobs_total{job="enqueue_health_check"}' in scraped("scheduler"),
            20,
            "scheduled jobs in the scheduler's metrics",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"adtivity_http_requests_total" in answer.read()
    finally:
        exits = stop_all(processes)
    assert exits == {"web": 0, "worker": 0, "streams": 0, "scheduler": 0}, {
        name: processes[name].lines[-15:] for name, code in exits.items() if code != 0
    }
    # Every line each process wrote is one JSON object naming it, the libraries' own lines too
    # (gunicorn's arbiter, Dramatiq's main process, Faust's banner is off).
    records = {
        name: [json.loads(line) for line in process.lines if line.strip()] for name, process in processes.items()
    }
    assert all(record["process"] == name for name, lines in records.items() for record in lines)
    loggers = {name: {record["logger"].split(".")[0] for record in lines} for name, lines in records.items()}
    assert "gunicorn" in loggers["web"] and "dramatiq" in loggers["worker"] and "faust" in loggers["streams"]


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.cluster.yml"])
def test_docker_compose_runs_what_the_procfile_runs(compose_file):
    """Each compose file's four processes are the Procfile's commands, with the Procfile's
    `env NAME=value` prefix as the service's environment: they cannot drift apart."""
    services = yaml.safe_load((ROOT / compose_file).read_text())["services"]
    for name, line in procfile().items():
        words, environment = shlex.split(line), {}
        if words[0] == "env":
            words.pop(0)
            while "=" in words[0]:
                variable, _, value = words.pop(0).partition("=")
                environment[variable] = value
        assert services[name]["command"] == words, name
        assert environment.items() <= services[name]["environment"].items(), name
    assert services["worker"]["environment"]["DATABASE_URL"] == services["web"]["environment"]["DATABASE_URL"]


def test_the_cluster_compose_file_is_a_consistent_cluster():
    """docker-compose.cluster.yml: two or more of each process, settings the app accepts, a Redis
    Cluster of 3 masters and 3 replicas apart from Dramatiq's plain Redis, ClickHouse as 2 shards x 2
    replicas on a 3-node Keeper with each node's macros matching its place, topics replicated once
    a broker."""
    document = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    services, configs = document["services"], document["configs"]
    env = services["web"]["environment"]
    settings = Settings.from_env(env | {"JWT_SECRET": "x" * 32})
    assert all(services[name]["deploy"]["replicas"] >= 2 for name in procfile())
    threads = int(services["worker"]["command"][services["worker"]["command"].index("--threads") + 1])
    assert threads * services["worker"]["deploy"]["replicas"] > 2 * settings.stream_shards

    def host(url: str) -> str:
        return urlsplit(url).hostname

    redis_nodes = [name for name, s in services.items() if "--cluster-enabled" in (s.get("command") or [])]
    assert len(redis_nodes) == 6 and settings.redis_cluster and host(settings.redis_url) in redis_nodes
    others = sorted(node.partition(":")[0] for node in settings.redis_cluster_nodes)
    assert others == sorted(set(redis_nodes) - {host(settings.redis_url)})
    create = services["redis-cluster-init"]["command"][0]
    assert all(f"{node}:6379" in create for node in redis_nodes) and "--cluster-replicas 1" in create
    assert host(settings.dramatiq_redis_url) in services and host(settings.dramatiq_redis_url) not in redis_nodes

    cluster = ElementTree.fromstring(configs["clickhouse-cluster"]["content"])
    [servers] = cluster.find("remote_servers")
    assert servers.tag == settings.clickhouse_cluster
    shards = [[r.findtext("host") for r in shard.iter("replica")] for shard in servers.iter("shard")]
    assert [len(replicas) for replicas in shards] == [2, 2]
    assert all(shard.findtext("internal_replication") == "true" for shard in servers.iter("shard"))
    assert host(settings.clickhouse_url) in shards[0]
    for number, replicas in enumerate(shards, 1):
        for replica in replicas:
            macros_source = next(c["source"] for c in services[replica]["configs"] if "macros" in c["target"])
            macros = ElementTree.fromstring(configs[macros_source]["content"]).find("macros")
            assert (int(macros.findtext("shard")), macros.findtext("replica")) == (number, replica)
    keepers = sorted(name for name in services if name.startswith("keeper-"))
    keeper = ElementTree.fromstring(configs["keeper"]["content"])
    assert sorted(s.findtext("hostname") for s in keeper.iter("server")) == keepers
    assert sorted(n.findtext("host") for n in cluster.find("zookeeper")) == keepers and len(keepers) == 3

    brokers = [name for name in services if name.startswith("redpanda-")]
    assert settings.kafka_replication_factor == len(brokers) == 3 and host(settings.kafka_broker_url) in brokers


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
    shared socket, one worker under load can hold most of them (bench/ingest_throughput.py)."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="2", WEB_REUSE_PORT=str(reuse_port).lower()))
    try:
        web.wait_ready()
        workers = worker_pids(web)
        sockets = [listening_sockets(pid, port) for pid in workers]
        assert len(workers) == 2 and all(len(owned) == 1 for owned in sockets)
        assert (sockets[0] != sockets[1]) is reuse_port
    finally:
        assert web.stop() == 0


def request_in_background(port: int, method: str, path: str, body: dict | None = None) -> dict:
    """Sends the request on a thread; the returned dict gets "status" when the answer arrives."""
    outcome: dict = {}

    def send() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request(
            method, path, body=json.dumps(body) if body else None, headers={"Content-Type": "application/json"}
        )
        outcome["status"] = connection.getresponse().status
        connection.close()

    outcome["thread"] = threading.Thread(target=send, daemon=True)
    outcome["thread"].start()
    return outcome


def quick_answer(port: int) -> int:
    """The status of a request that needs neither Postgres nor bcrypt (and is logged, unlike /health)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/v1/me")
    status = connection.getresponse().status
    connection.close()
    return status


LOGIN = {"email": "nobody@example.com", "password": "a long enough password"}


def test_a_web_worker_answers_others_while_a_login_waits_for_postgres(settings):
    """psycopg2 waits through gevent (web/gunicorn_conf.post_fork): one request held up by Postgres
    leaves the worker's other connections served. The test locks the users table, so the login's
    query waits, and another request is answered meanwhile."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="1"))
    locker = psycopg2.connect(settings.database_url)
    try:
        web.wait_ready()
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            login = request_in_background(port, "POST", "/v1/auth/login", LOGIN)
            wait_for(lambda: waiting_for_lock(settings), 10, "the login's query to wait for the lock")
            assert quick_answer(port) == 401
            assert "status" not in login
        locker.rollback()
        login["thread"].join(30)
        assert login["status"] == 401
    finally:
        locker.close()
        assert web.stop() == 0


def test_a_stopping_web_closes_idle_kept_alive_connections_at_once_and_answers_requests_under_way(settings):
    """web/gunicorn_worker.py: on SIGTERM a kept-alive connection waiting for its next request is
    closed at once (gunicorn alone held it until its 10 s graceful timeout), while a request under
    way (a login whose query waits for a lock) is still answered before the process exits."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="1"))
    locker = psycopg2.connect(settings.database_url)
    try:
        web.wait_ready()
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        idle.request("GET", "/health")
        assert idle.getresponse().read() and idle.sock is not None  # kept alive
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            login = request_in_background(port, "POST", "/v1/auth/login", LOGIN)
            wait_for(lambda: waiting_for_lock(settings), 10, "the login's query to wait for the lock")
            web.terminate()
            assert idle.sock.recv(1) == b""  # closed by the server, well within the socket's 5 s
            assert web.popen.poll() is None and "status" not in login
        locker.rollback()
        login["thread"].join(30)
        assert login["status"] == 401
        assert web.exit_code(20) == 0
        assert not [line for line in web.lines if "graceful timeout" in line]
    finally:
        locker.close()
        web.stop()


def waiting_for_lock(settings) -> bool:
    with psycopg2.connect(settings.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_a_web_worker_answers_others_while_bcrypt_runs():
    """bcrypt runs in gevent's thread pool (accounts/passwords.py): at 15 rounds a login takes seconds of
    CPU, and the same single worker answers another request meanwhile. The worker logs each request as it
    ends, so the order of its log lines tells which ended first."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="1", BCRYPT_ROUNDS="15", LOG_LEVEL="INFO"))
    try:
        web.wait_ready()
        worker = worker_pids(web)[0]
        before = cpu_seconds(worker)
        login = request_in_background(port, "POST", "/v1/auth/login", LOGIN)
        wait_for(lambda: cpu_seconds(worker) - before > 0.5, 30, "the login to be hashing")
        assert quick_answer(port) == 401
        login["thread"].join(60)
        assert login["status"] == 401
        wait_for(lambda: len(logged_routes(web)) == 2, 10, "both requests in the log")
        assert logged_routes(web) == ["/v1/me", "/v1/auth/login"]
    finally:
        assert web.stop() == 0


def worker_pids(web: Process) -> list[int]:
    with open(f"/proc/{web.popen.pid}/task/{web.popen.pid}/children") as children:
        return [int(pid) for pid in children.read().split()]


def cpu_seconds(pid: int) -> float:
    """User and system time of every thread of `pid`."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged_routes(web: Process) -> list[str]:
    return [json.loads(line)["route"] for line in list(web.lines) if line.startswith("{") and '"msg":"request"' in line]


def test_a_web_worker_serves_at_most_its_connection_limit_at_once():
    """WEB_WORKER_CONNECTIONS: with a limit of 1, a second client waits until the first connection
    closes, then is served."""
    port = free_port()
    web = Process("web", process_env(PORT=str(port), WEB_WORKERS="1", WEB_WORKER_CONNECTIONS="1"))
    try:
        web.wait_ready()
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        first.request("GET", "/health")
        kept = first.getresponse()
        kept.read()
        assert kept.status == 200 and not kept.will_close
        second = request_in_background(port, "GET", "/health")
        second["thread"].join(1.5)
        assert "status" not in second
        first.close()
        second["thread"].join(30)
        assert second["status"] == 200
    finally:
        assert web.stop() == 0


@pytest.mark.parametrize("name", ["web", "worker", "scheduler"])
def test_a_development_process_without_a_jwt_secret_refuses_to_start(name):
    """Development mode once fell back to a signing secret printed in the source, so anyone could
    forge a token for a `make run` server; now no environment starts without a secret of its own."""
    env = process_env(PORT=str(free_port()), ADTIVITY_ENV="development")
    del env["JWT_SECRET"]
    process = Process(name, env)
    assert process.exit_code(30) not in (0, "killed after 30 s")
    wait_for(lambda: any("JWT_SECRET must be set" in line for line in process.lines), 5, "the reason in its output")
