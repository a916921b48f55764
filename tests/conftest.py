"""Test fixtures against the real services: a Postgres database, a Redis database number and a
ClickHouse database of the tests' own, created migrated at the start and dropped at the end.

No test may depend on today's date. Make every time relative to the clock the code under test reads
(`dt.datetime.now(...) - dt.timedelta(days=1)`), or pass the code a fixed `now` (retention,
realtime windows, housekeeping take one); never post a fixed date to a path that applies an age rule
(INGEST_MAX_AGE_DAYS, the dedup window, retention months, rollup windows, token expiry).
`make test-shifted` runs the whole suite with the clock of the tests and of the processes they start
moved a year ahead (CLOCK_SHIFT, libfaketime; the services keep the real time): it passes only if
nothing depends on the date it runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import pytest

TEST_ENV = {
    "ADTIVITY_ENV": "test",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/adtivity_test",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    # TEST_CLICKHOUSE_URL picks another engine: `make test` runs the ClickHouse layer's tests on
    # chDB too (chdb:///dir/database, a current ClickHouse in process).
    "CLICKHOUSE_URL": os.environ.get("TEST_CLICKHOUSE_URL") or "http://default:@127.0.0.1:8123/adtivity_test",
    "DRAMATIQ_NAMESPACE": "adtivity-test",
    "JWT_SECRET": "test-only-secret-that-is-long-enough-0123456789",
    "BCRYPT_ROUNDS": "4",
    "STREAMS_APP_ID": "adtivity-test-streams",
    "STREAMS_DATA_DIR": ".data/test-streams",
    # Off by default: tests run beside `make run`; test_processes turns them on at free ports.
    "WORKER_METRICS_PORT": "0",
    "STREAMS_METRICS_PORT": "0",
    "SCHEDULER_METRICS_PORT": "0",
}
# For the processes the tests start, and the CLI they run: every one reads these from the environment.
os.environ.update(TEST_ENV)

import falcon.testing  # noqa: E402
import psycopg2  # noqa: E402
import redis  # noqa: E402

from adtivity.cli import run_migrations  # noqa: E402
from adtivity.settings import Settings  # noqa: E402
from models.accounts import ALL_MODELS  # noqa: E402
from models.chain import CHAIN_MODELS  # noqa: E402
from models.clickhouse import clickhouse_client, database_name  # noqa: E402
from models.db import database, utcnow  # noqa: E402
from models.privacy import PrivacyRequest  # noqa: E402
from models.rollups import ROLLUP_MODELS  # noqa: E402
from models.segments import Segment  # noqa: E402
from models.tracking import TRACKING_MODELS  # noqa: E402
from tests import processes  # noqa: E402
from tests.helpers import Api  # noqa: E402
from tests.processes import running_system  # noqa: E402
from web.app import Deps, create_app  # noqa: E402


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        # FORCE ends every session on it, and none can start meanwhile (a background thread's pool may try).
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(scope="session")
def settings():
    """The tests' settings. Asking for them (directly, or through api, client, redis_client, ...)
    creates the tests' own stores, migrated, once a session, and drops them at its end; a test
    that needs no store (a pure function's) starts none."""
    settings = Settings.from_env()
    drop_postgres_database(settings.database_url)
    admin = clickhouse_client(settings.clickhouse_url, database="default")
    admin.command(f"DROP DATABASE IF EXISTS `{database_name(settings.clickhouse_url)}`")
    run_migrations(settings)
    with database.connection_context():
        # Test data need not survive a power cut; this makes each commit ~1 ms faster.
        database.execute_sql(f'ALTER DATABASE "{settings.database_url.rsplit("/", 1)[1]}" SET synchronous_commit = off')
    database.close_all()
    yield settings
    database.close_all()
    drop_postgres_database(settings.database_url)
    admin.command(f"DROP DATABASE IF EXISTS `{database_name(settings.clickhouse_url)}`")
    redis.Redis.from_url(settings.redis_url).flushdb()


@pytest.fixture(autouse=True)
def processes_marker(request: pytest.FixtureRequest):
    """Lets tests/processes.Process start a process only in a test marked `processes`."""
    processes.MARKED["processes"] = request.node.get_closest_marker("processes") is not None
    yield
    processes.MARKED["processes"] = False


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest):
    """After each test that used the stores, empties them for the next."""
    yield
    if "settings" not in request.fixturenames:
        return
    settings = request.getfixturevalue("settings")
    tables = [
        model._meta.table_name
        for model in ALL_MODELS + TRACKING_MODELS + ROLLUP_MODELS + CHAIN_MODELS + (PrivacyRequest, Segment)
    ]
    # DELETE with the foreign-key triggers off for the transaction: every table is emptied, so no
    # order is needed, and it costs a few ms where TRUNCATE ... CASCADE cost about 100.
    with database.connection_context(), database.atomic():
        database.execute_sql("SET LOCAL session_replication_role = replica")
        for table in tables:
            database.execute_sql(f'DELETE FROM "{table}"')
    redis.Redis.from_url(settings.redis_url).flushdb()


@pytest.fixture
def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


_made: list[Deps] = []  # the dependencies of every app a test made, closed after it


def make_client(settings: Settings, **deps_options) -> falcon.testing.TestClient:
    deps = Deps.from_settings(settings, **deps_options)
    _made.append(deps)
    return falcon.testing.TestClient(create_app(deps))


@pytest.fixture(autouse=True)
def close_made_apps():
    """An app's key cache runs two threads: stopped after each test, not left to outlive the test
    database (and log that it is gone)."""
    yield
    while _made:
        _made.pop().keys.close()


@pytest.fixture
def client(settings: Settings) -> falcon.testing.TestClient:
    return make_client(settings)


@pytest.fixture
def api(client: falcon.testing.TestClient) -> Api:
    return Api(client)


class Clock:
    """A clock a test moves: `clock()` is now plus what `advance` added."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked_api(settings: Settings, clock: Clock) -> Api:
    """An API whose key expiry reads `clock`."""
    return Api(make_client(settings, clock=clock))


@pytest.fixture
def with_settings(settings: Settings):
    """Build a client whose settings differ from the session's: with_settings(login_max_failures=2)."""
    return lambda **changes: Api(make_client(dataclasses.replace(settings, **changes)))


@pytest.fixture
def system(settings):
    """web, worker and scheduler from the Procfile on a free port (test_realtime_e2e adds streams)."""
    with running_system(("web", "worker", "scheduler")) as system:
        yield system
