"""What the benchmark scripts share: settings for a bench run, a company with keys, processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adtivity.cli import run_migrations  # noqa: E402
from adtivity.settings import Settings  # noqa: E402
from tests.processes import wait_for  # noqa: E402

BENCH_ENV = {
    "ADTIVITY_ENV": "development",
    "JWT_SECRET": secrets.token_urlsafe(48),
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/adtivity_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    "CLICKHOUSE_URL": "http://default:@127.0.0.1:8123/adtivity_bench",
    "DRAMATIQ_NAMESPACE": "adtivity-bench",
    "BCRYPT_ROUNDS": "4",
    "LOG_LEVEL": "WARNING",
    "INGEST_RATE_PER_KEY_PER_SECOND": "10000000",
}


def bench_settings(**overrides) -> Settings:
    os.environ.update(BENCH_ENV)
    settings = Settings.from_env()
    return dataclasses.replace(settings, **overrides)


def prepare(settings: Settings) -> None:
    run_migrations(settings)


def bench_company(settings: Settings, kinds: tuple[str, ...] = ("write",)) -> tuple[str, ...]:
    """A new company and a key of each kind asked for, made directly in the database."""
    from accounts.keys import create_key
    from models.accounts import Company, Membership, User
    from models.db import open_database

    open_database(settings.database_url)
    user = User.create(email=f"bench{time.time_ns()}@example.com", password_hash="x")
    company = Company.create(name=f"bench {time.time_ns()}", owner=user)
    Membership.create(company=company, user=user, role="owner")
    return (str(company.id), *(create_key(company, kind, "bench", user)[0] for kind in kinds))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def start(command: list[str], env: dict, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
        except urllib.error.HTTPError as error:
            return error.code == 404  # the naive app has no /health, but it answers
        return True

    try:
        wait_for(answers, 30, f"{command} to answer", interval=0.2, tolerate=(OSError,))
    except AssertionError:
        process.kill()
        raise
    return process


def cpu_reference() -> str:
    """How fast this machine is right now: seconds for 20 million Python additions. The cores of
    these machines are shared, and the same commit measured 18.7k and 9.6k events/s an hour apart;
    this figure, printed beside every result, shows which kind of hour it was."""
    started = time.perf_counter()
    total = 0
    for number in range(20_000_000):
        total += number
    seconds = time.perf_counter() - started
    return (
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores; CPU reference at the time: "
        f"{seconds:.2f} s for 20M Python additions (lower is faster)."
    )


def record(section: str, lines: list[str], document: str = "benchmarks.md") -> None:
    """Replaces `section` in docs/<document> (benchmarks.md unless told) with `lines`."""
    path = ROOT / "docs" / document
    text = path.read_text() if path.exists() else f"# {document.removesuffix('.md').capitalize()}\n"
    marker = f"\n## {section}\n"
    head, _, rest = text.partition(marker)
    tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    path.write_text(head.rstrip("\n") + "\n" + marker + "\n".join(lines) + "\n" + tail)
