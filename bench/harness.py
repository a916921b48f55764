"""The whole system under load, shared by bench/load.py (sustained throughput) and bench/chaos.py
(crashes and outages).

- `Fleet`: the four Procfile processes on databases of their own and a Redis of their own that runs
  with an append-only file (fsync on every write, so an acknowledged event survives a SIGKILL of
  Redis); kill and restart each, a gunicorn worker, the Redis; peak resident memory of each.
- `Load`: threads posting batches of 50 realistic web2 and web3 events for several companies at a
  set rate, with resends of accepted batches and late events; a batch that is not answered 200 is
  sent again, with the same message ids, until it is (what an SDK does), so every batch sent is
  accepted in the end. Message ids are `<16 random hex digits>-run:thread:batch:index`: random at
  the front, as real SDKs' UUIDs are (they scatter over the exactly-once look-up's key order), and
  the rest lets ClickHouse be checked batch by batch.
- `Probes`: one event at a time to a company of its own: seconds from POST to queryable in ClickHouse
  and to counted in GET /realtime.
- `LagSampler`: the streams' backlog (entries pending or not yet read, every consumer group).
- `verify`: afterwards, ClickHouse against what was accepted (exactly once), the rollups against
  ClickHouse, the real-time snapshots against ClickHouse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import requests
from common import BENCH_ENV, ROOT, percentile
from events import event

from tests.processes import free_port, procfile_command, stop_groups, wait_for

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
BATCH = 50
RANDOM_PART = "@RANDOM@"  # where a message id's random part goes in a request body template


def group_usage(pgid: int) -> tuple[float, float]:
    """Resident memory (MB) and CPU seconds used so far (with reaped children's) of every process in
    a process group (a Procfile process and its children)."""
    return groups_usage([pgid])[pgid]


def process_stats():
    """(its /proc directory, command name, the stat fields after the name) of every process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            command, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue
        yield stat.parent, command, fields.split()


def cpu_seconds(fields: list[str]) -> float:
    """utime, stime, cutime and cstime of a process's stat fields (as process_stats gives them)."""
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def groups_usage(pgids: list[int]) -> dict[int, tuple[float, float]]:
    """group_usage of several process groups, from one pass over /proc (the load generator shares
    the machine with what it measures)."""
    megabytes, seconds = dict.fromkeys(pgids, 0.0), dict.fromkeys(pgids, 0.0)
    for directory, _, fields in process_stats():
        pgid = int(fields[2])
        if pgid not in megabytes:
            continue
        try:
            status = (directory / "status").read_text()
        except OSError:
            continue
        seconds[pgid] += cpu_seconds(fields)
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                megabytes[pgid] += int(line.split()[1]) / 1024
    return {pgid: (megabytes[pgid], seconds[pgid]) for pgid in pgids}


SERVICE_COMMANDS = {"clickhouse": "ClickHouse", "postgres": "Postgres", "redis-server": "Redis", "tansu": "broker"}


def machine_cpu() -> dict[str, float]:
    """CPU seconds used so far: "machine" (all cores, every process: /proc/stat's busy time), each
    service of SERVICE_COMMANDS (by command name, with reaped children's: Postgres's backends) and
    "load generator" (this process). Differences over a run tell where the machine's time went."""
    user, nice, system, idle, iowait, *rest = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    seconds = defaultdict(float, {"machine": (user + nice + system + sum(rest)) / os.sysconf("SC_CLK_TCK")})
    for _, command, fields in process_stats():
        name = next((label for prefix, label in SERVICE_COMMANDS.items() if command.startswith(prefix)), None)
        if name is not None:
            seconds[name] += cpu_seconds(fields)
    seconds["load generator"] = sum(os.times()[:2])
    return dict(seconds)


class AofRedis:
    """A Redis of the run's own, on its own port, with an append-only file fsynced `fsync` ("always":
    an acknowledged write survives a SIGKILL; "everysec": Redis' default, up to a second at risk;
    "no-aof": no append-only file, as `make run`'s Redis)."""

    def __init__(self, directory: Path, fsync: str = "always") -> None:
        self.directory = directory
        self.fsync = fsync
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                *(
                    ["--appendonly", "no"]
                    if self.fsync == "no-aof"
                    else ["--appendonly", "yes", "--appendfsync", self.fsync]
                ),
                "--save",
                "",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # the real clock, as every service keeps (redis-server cannot start under `make test-shifted`'s libfaketime)
            env={name: value for name, value in os.environ.items() if name != "LD_PRELOAD"},
        )
        import redis

        wait_for(lambda: redis.Redis(port=self.port).ping(), 30, "the run's Redis", interval=0.2, tolerate=(Exception,))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


class Run:
    """One run's own Postgres and ClickHouse databases (made anew), its own append-only Redis, and the
    environment the four processes get. The settings of this process match it."""

    def __init__(self, name: str, fsync: str = "always", **env: str) -> None:
        from adtivity.cli import run_migrations
        from adtivity.settings import Settings

        self.directory = ROOT / ".data" / name
        self.redis = AofRedis(self.directory / "redis", fsync)
        self.redis.start()
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            **BENCH_ENV,
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/adtivity_{name}",
            "CLICKHOUSE_URL": f"http://default:@127.0.0.1:8123/adtivity_{name}",
            "REDIS_URL": self.redis.url,
            "DRAMATIQ_NAMESPACE": f"adtivity-{name}",
            "STREAMS_APP_ID": f"adtivity-{name}-{uuid.uuid4().hex[:8]}",
            "STREAMS_DATA_DIR": str(self.directory / "streams"),
            "PORT": str(self.port),
            "WORKER_METRICS_PORT": "0",
            "STREAMS_METRICS_PORT": "0",
            "SCHEDULER_METRICS_PORT": "0",
            "HARNESS_LOG_DIR": str(self.directory / "logs"),
            **env,
        }
        os.environ.update({k: v for k, v in self.env.items() if k != "PATH"})
        self.settings = Settings.from_env()
        try:
            self._drop_databases(name)
            run_migrations(self.settings)
        except BaseException:
            self.redis.stop()
            raise

    def _drop_databases(self, name: str) -> None:
        import psycopg2

        from models.clickhouse import clickhouse_client

        connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS adtivity_{name} WITH (FORCE)")
        connection.close()
        clickhouse_client(self.settings.clickhouse_url, database="default", timeout=300).command(
            f"DROP DATABASE IF EXISTS adtivity_{name}"
        )

    def client(self):
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=5)

    def close(self) -> None:
        self.redis.stop()


class Fleet:
    NAMES = ("web", "worker", "scheduler", "streams")

    def __init__(self, env: dict, port: int) -> None:
        self.env = env
        self.port = port
        self.processes: dict[str, subprocess.Popen] = {}
        self.peak_rss: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.restarts: dict[str, int] = defaultdict(int)
        self.exited_on_their_own: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._sampling = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str) -> None:
        log = open(self.env["HARNESS_LOG_DIR"] + f"/{name}.log", "a")
        self.processes[name] = subprocess.Popen(
            procfile_command(name), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_all(self) -> None:
        for name in self.NAMES:
            self.start(name)
        wait_for(
            lambda: requests.get(f"{self.base}/health", timeout=2).ok,
            60,
            "the web process",
            interval=0.2,
            tolerate=(Exception,),
        )
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def kill(self, name: str) -> None:
        """SIGKILL to the process's whole group (no clean-up runs, as in a crash), then a restart."""
        with self._lock:
            process = self.processes[name]
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)
            self.restarts[name] += 1
            self.start(name)

    def kill_web_worker(self) -> None:
        """SIGKILL to one gunicorn worker; the master starts another."""
        children = [
            int(p)
            for p in Path(f"/proc/{self.processes['web'].pid}/task/{self.processes['web'].pid}/children")
            .read_text()
            .split()
        ]
        os.kill(children[0], signal.SIGKILL)
        self.restarts["web worker"] += 1

    def _sample_memory(self) -> None:
        """Every second: peak memory; a process that exited by itself is counted and started again
        (as a supervisor would; honcho would stop them all)."""
        while not self._sampling.wait(1.0):
            with self._lock:
                running = {}
                for name, process in list(self.processes.items()):
                    if process.poll() is not None and not self._sampling.is_set():
                        self.exited_on_their_own[name] += 1
                        self.start(name)
                        continue
                    running[name] = process.pid
                usage = groups_usage(list(running.values()))
                for name, pid in running.items():
                    megabytes, self.cpu_seconds[name] = usage[pid]
                    self.peak_rss[name] = max(self.peak_rss[name], megabytes)

    def stop_all(self) -> None:
        self._sampling.set()
        with self._lock:  # let a sampling pass in progress finish, so it restarts nothing being stopped
            pass
        stop_groups(list(self.processes.values()), 30)


class Poster:
    """POSTs on one kept-alive connection, speaking just enough HTTP/1.1 over a socket: the generator
    shares the cores with the system it measures, and http.client's header parsing (the email
    package) was most of its CPU (requests, before it, spent a tenth on proxy and environment
    look-ups alone). Answers must carry Content-Length, as the API's do. Reconnects when the server
    closes."""

    def __init__(self, base: str, timeout: float = 10) -> None:
        parts = urlsplit(base)
        self.address = (parts.hostname, parts.port)
        self.host = f"{parts.hostname}:{parts.port}"
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int | str, str]:
        """(status, body text), or ("connection error", "") when there was no whole answer."""
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode()
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout)
                self.buffer = b""
            self.sock.sendall(request + body)
            status, answer, close = self._read_answer()
        except (OSError, ValueError):
            self.close()
            return "connection error", ""
        if close:
            self.close()
        return status, answer.decode(errors="replace")

    def _read_answer(self) -> tuple[int, bytes, bool]:
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        if "content-length" not in fields:
            raise ValueError("an answer without Content-Length")
        length = int(fields["content-length"])
        while len(self.buffer) < length:
            self._receive()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), answer, fields.get("connection", "").lower() == "close"

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class Load:
    """`threads` posting new events at `events_per_second` in all to `companies` [(company id, write
    key)]; resent batches (duplicates, as an SDK's retries are) come on top."""

    def __init__(
        self,
        base: str,
        companies: list[tuple[str, str]],
        events_per_second: int,
        *,
        threads: int = 4,
        resend_fraction: float = 0.03,
        late_fraction: float = 0.05,
    ) -> None:
        self.base = base
        self.companies = companies
        self.interval = BATCH * threads / events_per_second
        self.threads = threads
        self.resend_fraction = resend_fraction
        self.late_fraction = late_fraction
        self.run = uuid.uuid4().hex[:8]
        self.accepted: dict[str, set[str]] = defaultdict(set)  # company -> "thread:batch" accepted
        self.latencies: list[float] = []
        self.statuses: dict[int | str, int] = defaultdict(int)
        self.resends = 0
        self.late_events = 0
        self.first_answer_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._workers = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def stop(self, give_up_after: float = 300) -> None:
        """Stops sending new batches; waits for the ones in flight to be accepted."""
        self.stopped_at = time.monotonic()
        self._stop.set()
        for worker in self._workers:
            worker.join(give_up_after)
        if any(worker.is_alive() for worker in self._workers):
            raise RuntimeError("batches still unaccepted after the load stopped")

    @property
    def events_accepted(self) -> int:
        return sum(len(batches) for batches in list(self.accepted.values())) * BATCH

    def _templates(self, rng: random.Random, thread: int, count: int = 20) -> list[list[bytes]]:
        """Request bodies made once, with the batch number left as a placeholder and cut where each
        message id's random part goes: the generator must not take the cores the system under test
        needs. Late events are 10 minutes to 30 hours old."""
        now = dt.datetime.now(dt.UTC)
        templates = []
        for _ in range(count):
            events = []
            for index in range(BATCH):
                made = event(rng)
                made["message_id"] = f"{RANDOM_PART}{self.run}:{thread}:@BATCH@:{index}"
                if rng.random() < self.late_fraction:
                    made["timestamp"] = (now - dt.timedelta(seconds=rng.randrange(600, 30 * 3600))).isoformat()
                events.append(made)
            templates.append(json.dumps({"batch": events}).encode().split(RANDOM_PART.encode()))
        return templates

    def _send(self, thread: int) -> None:
        rng = random.Random(thread)
        session = Poster(self.base)
        templates = self._templates(rng, thread)
        late_per_template = [sum(piece.count(b'"timestamp"') for piece in template) for template in templates]
        sent: list[tuple[str, str, bytes]] = []
        next_at = time.monotonic()
        number = 0
        while not self._stop.is_set():
            if sent and rng.random() < self.resend_fraction:  # on top of the rate asked for new events
                company, key, body = rng.choice(sent)
                self._deliver(session, company, key, body, None)
                with self._lock:
                    self.resends += 1
                continue
            company, key = self.companies[number % len(self.companies)]
            choice = number % len(templates)
            pieces = templates[choice]
            random_parts = [b"%016x-" % rng.getrandbits(64) for _ in pieces[1:]]
            body = b"".join(part for pair in zip(pieces, random_parts, strict=False) for part in pair) + pieces[-1]
            body = body.replace(b"@BATCH@", str(number).encode())
            self._deliver(session, company, key, body, f"{thread}:{number}")
            with self._lock:
                self.late_events += late_per_template[choice]
            sent = (sent + [(company, key, body)])[-50:]
            number += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _deliver(self, session: Poster, company: str, key: str, body: bytes, batch: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": CHROME}
        wait = 0.2
        first = True
        while True:
            started = time.monotonic()
            status, text = session.post("/v1/events", body, headers)
            with self._lock:
                self.statuses[status] += 1
                if status == 200:
                    if first:
                        self.latencies.append(time.monotonic() - started)
                    if batch is not None:
                        self.accepted[company].add(batch)
                    return
            if isinstance(status, int) and status not in (429, 500, 502, 503, 504):
                raise RuntimeError(f"the API refused a valid batch with {status}: {text[:300]}")
            first = False
            time.sleep(wait)
            wait = min(2.0, wait * 2)

    def summary(self) -> dict:
        seconds = self.stopped_at - self.started_at
        return {
            "seconds": round(seconds, 1),
            "events_accepted": self.events_accepted,
            "events_per_second": round(self.events_accepted / seconds),
            "p50_ms": round(percentile(self.latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 1),
            "resent_batches": self.resends,
            "late_events": self.late_events,
            "answers": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
        }


class LagSampler:
    """Every `interval` seconds: entries not yet acknowledged, summed over every stream and group
    (and per consumer group, to tell which stage is behind)."""

    def __init__(self, settings, client, interval: float = 2.0) -> None:
        from adtivity.pipeline_status import group_backlog, stream_groups

        def read() -> int:
            by_group: dict[str, int] = defaultdict(int)
            for groups in stream_groups(settings, client).values():
                for name, group in groups.items():
                    by_group[name] += group_backlog(group)
            for name, entries in by_group.items():
                self.peak_by_group[name] = max(self.peak_by_group[name], entries)
            return sum(by_group.values())

        self.read = read
        self.peak_by_group: dict[str, int] = defaultdict(int)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.monotonic() - started, self.read()))
            except Exception:  # Redis restarting
                continue

    def stop(self) -> None:
        self._stop.set()

    def trend(self, skip_seconds: float) -> dict:
        """Least-squares slope of the backlog after a warm-up (entries per second: flat is about 0)."""
        points = [(t, lag) for t, lag in self.samples if t >= skip_seconds]
        if len(points) < 3:
            return {"samples": len(points)}
        mean_t = sum(t for t, _ in points) / len(points)
        mean_lag = sum(lag for _, lag in points) / len(points)
        slope = sum((t - mean_t) * (lag - mean_lag) for t, lag in points) / sum((t - mean_t) ** 2 for t, _ in points)
        return {
            "samples": len(points),
            "mean_entries": round(mean_lag, 1),
            "max_entries": max(lag for _, lag in points),
            "last_entries": points[-1][1],
            "slope_entries_per_second": round(slope, 3),
            "peak_by_group": dict(self.peak_by_group),
        }


class Probes:
    """One probe event at a time: seconds from POST to queryable in ClickHouse and to counted in the
    real-time snapshot of its own company."""

    def __init__(self, base: str, settings, company: str, write_key: str, read_key: str) -> None:
        from models.clickhouse import clickhouse_client

        self.base = base
        self.clickhouse = clickhouse_client(settings.clickhouse_url)
        self.company, self.write_key, self.read_key = company, write_key, read_key
        self.to_clickhouse: list[float] = []
        self.to_realtime: list[float] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _realtime_count(self, session: requests.Session) -> int:
        answer = session.get(
            f"{self.base}/v1/companies/{self.company}/realtime",
            headers={"Authorization": f"Bearer {self.read_key}"},
            timeout=5,
        ).json()
        return answer["last_hour"]["events"]

    def _run(self) -> None:
        session = requests.Session()
        sent_count = 0
        while not self._stop.wait(1.0):
            message_id = uuid.uuid4().hex
            sent = time.monotonic()
            # The probe has no timestamp, so its event time is when the API received it: bounding the
            # look-up by time lets the primary key skip all but the newest rows (the query costs
            # ClickHouse about 4 ms of CPU without it, and runs every 50 ms while a probe waits).
            not_before = int(time.time()) - 60
            try:
                answer = session.post(
                    f"{self.base}/v1/events",
                    headers={"Authorization": f"Bearer {self.write_key}", "User-Agent": CHROME},
                    json={"type": "track", "name": "Probe", "user_id": "prober", "message_id": message_id},
                    timeout=5,
                )
            except requests.RequestException:
                continue
            if answer.status_code != 200:
                continue
            sent_count += 1
            seen_clickhouse = seen_realtime = None
            while (seen_clickhouse is None or seen_realtime is None) and time.monotonic() < sent + 30:
                try:
                    if (
                        seen_clickhouse is None
                        and self.clickhouse.query(
                            "SELECT count() FROM events WHERE company_id = toUUID(%(c)s) "
                            "AND event_time >= toDateTime(%(t)s) AND message_id = %(m)s",
                            parameters={"c": self.company, "t": not_before, "m": message_id},
                        ).result_rows[0][0]
                    ):
                        seen_clickhouse = time.monotonic() - sent
                    if seen_realtime is None and self._realtime_count(session) >= sent_count:
                        seen_realtime = time.monotonic() - sent
                except Exception:  # an outage: keep polling until the deadline
                    pass
                time.sleep(0.05)
            if seen_clickhouse is None or seen_realtime is None:
                self.missed += 1
            if seen_clickhouse is not None:
                self.to_clickhouse.append(seen_clickhouse)
            if seen_realtime is not None:
                self.to_realtime.append(seen_realtime)

    def summary(self) -> dict:
        def figures(values: list[float]) -> dict:
            if not values:
                return {"probes": 0}
            return {
                "probes": len(values),
                "p50_s": round(percentile(values, 0.5), 2),
                "p95_s": round(percentile(values, 0.95), 2),
                "max_s": round(max(values), 2),
            }

        return {
            "to_clickhouse": figures(self.to_clickhouse),
            "to_realtime": figures(self.to_realtime),
            "not_seen_within_30_s": self.missed,
        }


def drain(settings, client, *, seconds: float = 600) -> None:
    """Waits until every consumer group of every stream has acknowledged everything."""
    from adtivity.pipeline_status import group_backlog, stream_groups

    def empty() -> bool:
        groups = [g for gs in stream_groups(settings, client).values() for g in gs.values()]
        return bool(groups) and all(group_backlog(g) == 0 for g in groups)

    wait_for(empty, seconds, "the streams to drain", interval=1.0, tolerate=(Exception,))


def verify(settings, client, load: Load, *, realtime_settle_seconds: float = 60) -> dict:
    """Every accepted batch in ClickHouse exactly once and nothing else; rollups equal ClickHouse;
    real-time snapshots against ClickHouse (their drift, if any)."""
    from models import redis_keys
    from models.clickhouse import clickhouse_client
    from models.db import database, open_database
    from models.rollups import RollupCount
    from rollups.compute import rollup_company_now

    clickhouse = clickhouse_client(settings.clickhouse_url)
    checks: dict = {"events_checked": load.events_accepted, "companies": len(load.companies)}
    problems = []
    for company, _ in load.companies:
        params = {"c": company, "run": f"%-{load.run}:%"}
        total, distinct = clickhouse.query(
            "SELECT count(), uniqExact(message_id) FROM events WHERE company_id = toUUID(%(c)s) "
            "AND message_id LIKE %(run)s",
            parameters=params,
        ).result_rows[0]
        batches = {
            row[0]
            for row in clickhouse.query(
                "SELECT DISTINCT arrayStringConcat(arraySlice(splitByChar(':', message_id), 2, 2), ':') FROM events "
                "WHERE company_id = toUUID(%(c)s) AND message_id LIKE %(run)s",
                parameters=params,
            ).result_rows
        }
        expected = load.accepted[company]
        if total != distinct or distinct != len(expected) * BATCH or batches != expected:
            problems.append(
                f"company {company}: {total} rows, {distinct} distinct ids, "
                f"{len(expected) * BATCH} accepted, {len(batches ^ expected)} batches differ"
            )
    checks["clickhouse_exactly_once"] = not problems

    open_database(settings.database_url)
    window = dataclasses.replace(settings, rollup_window_hours=48)
    rollup_mismatches = 0
    for company, _ in load.companies:
        rollup_company_now(window, client, clickhouse, company)
        truth = dict(
            clickhouse.query(
                "SELECT toDate(event_time), count() FROM events WHERE company_id = toUUID(%(c)s) AND is_bot = 0 "
                "AND event_time >= toStartOfDay(now() - INTERVAL 1 DAY) GROUP BY toDate(event_time)",
                parameters={"c": company},
            ).result_rows
        )
        with database.connection_context():
            rolled = {
                row.bucket.date(): int(row.amount)
                for row in RollupCount.select().where(
                    RollupCount.company_id == company,
                    RollupCount.grain == "day",
                    RollupCount.metric == "events",
                    RollupCount.dimension == "",
                    RollupCount.bucket >= dt.datetime.combine(min(truth, default=dt.date.today()), dt.time()),
                )
            }
        if {day: n for day, n in rolled.items() if n} != truth:
            rollup_mismatches += 1
            problems.append(f"company {company}: rollups {rolled} != ClickHouse {truth}")
    checks["rollups_equal_clickhouse"] = rollup_mismatches == 0

    today = int(time.time()) // 86400 * 86400

    def realtime_drift() -> int:
        drift = 0
        for company, _ in load.companies:
            snapshot = client.get(redis_keys.realtime_snapshot(company))
            counted = json.loads(snapshot)["today"]["events"] if snapshot else 0
            truth = clickhouse.query(
                "SELECT count() FROM events WHERE company_id = toUUID(%(c)s) AND is_bot = 0 "
                "AND event_time >= toDateTime(%(t)s)",
                parameters={"c": company, "t": today},
            ).result_rows[0][0]
            drift += counted - truth
        return drift

    deadline = time.monotonic() + realtime_settle_seconds
    drift = realtime_drift()
    while drift != 0 and time.monotonic() < deadline:
        time.sleep(2)
        drift = realtime_drift()
    checks["realtime_drift_events"] = drift
    checks["problems"] = problems
    return checks


def check_lines(checks: dict) -> list[str]:
    """The lines of docs/reliability.md that say what `verify` found."""
    return [
        f"- Every accepted event in ClickHouse exactly once: **{checks['clickhouse_exactly_once']}**.",
        f"- Rollups equal ClickHouse: **{checks['rollups_equal_clickhouse']}**.",
        f"- Real-time drift against ClickHouse (today's events, all companies): **{checks['realtime_drift_events']:+}**.",
        *(f"- Problem: {problem}" for problem in checks["problems"]),
    ]
