"""Platform admins: set only by the operator command, and the only ones on operator endpoints."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from adtivity.pipeline_status import group_backlog, stream_groups
from models import redis_keys
from models.accounts import User
from models.db import database, utcnow
from models.redis_streams import PERSIST_GROUP, stream_key
from models.rollups import RollupState
from models.tracking import Quarantine
from tests.ingest_helpers import CHROME
from tests.pipeline_helpers import drain, stored
from workers.health import record_health
from workers.main import build_runtime

ROOT = Path(__file__).resolve().parent.parent


def create_admin(email: str, password: str | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "adtivity", "create-admin", "--email", email]
    if password is not None:
        args.append("--password-stdin")
    return subprocess.run(
        args, cwd=ROOT, env=os.environ, input=(password or "") + "\n", capture_output=True, text=True, timeout=60
    )


def test_operator_command_flags_an_existing_user(api):
    session = api.user("ops@example.com")
    assert api.get("/v1/system/status", auth=session).status_code == 403
    done = create_admin("OPS@example.com")
    assert done.returncode == 0, done.stderr
    assert User.get(User.email == "ops@example.com").is_platform_admin
    assert api.get("/v1/system/status", auth=session).status_code == 200


def test_operator_command_creates_a_new_admin_with_a_password_from_stdin(api):
    done = create_admin("root@example.com", "an operator passphrase")
    assert done.returncode == 0, done.stderr
    assert "an operator passphrase" not in done.stdout + done.stderr
    assert api.get("/v1/system/status", auth=api.login("root@example.com", "an operator passphrase")).status_code == 200


def test_no_api_call_makes_a_platform_admin(api):
    answer = api.post(
        "/v1/auth/register",
        json={"email": "sneaky@example.com", "password": "a long passphrase", "is_platform_admin": True},
    )
    assert answer.status_code == 422
    assert not User.select().where(User.is_platform_admin == True).exists()  # noqa: E712


def test_status_shows_the_latest_health_check_and_heartbeats(api, settings, redis_client):
    session = api.user("ops2@example.com")
    create_admin(session.email)
    redis_client.xgroup_create(stream_key(0), PERSIST_GROUP, id="0", mkstream=True)
    redis_client.xadd(stream_key(0), {"e": "x"})
    redis_client.set(redis_keys.REALTIME_AS_OF, time.time() - 30)
    an_hour_ago = utcnow() - dt.timedelta(hours=1)
    stale = RollupState.create(company_id=uuid.uuid4(), computed_at=an_hour_ago, complete_until=an_hour_ago)
    RollupState.create(company_id=uuid.uuid4(), computed_at=utcnow(), complete_until=utcnow())
    record_health(settings, redis_client, build_runtime(settings).broker)  # the worker's broker, its queues declared
    redis_client.set(redis_keys.process_heartbeat("streams"), time.time())
    status = api.get("/v1/system/status", auth=session).json
    assert status["health_check"]["dependencies"]["postgres"]["up"] is True
    assert status["health_check"]["streams"][stream_key(0)] == {PERSIST_GROUP: {"pending": 0, "lag": 1}}
    assert 30 <= status["health_check"]["realtime"]["seconds_behind"] < 35
    assert status["health_check"]["queues"]["default"] == {"waiting": 0, "delayed": 0}
    assert status["health_check"]["quarantine"] == {"entries": 0, "events": 0}
    rollups = status["health_check"]["rollups"]
    assert rollups["companies"] == 2 and rollups["stale"] == 1
    assert rollups["stalest"][0] == {
        "company_id": str(stale.company_id),
        "computed_at": an_hour_ago.isoformat(),
        "complete_until": an_hour_ago.isoformat(),
    }
    assert status["processes"]["worker"]["seconds_ago"] < 5
    assert status["processes"]["streams"]["seconds_ago"] < 5
    assert status["processes"]["scheduler"] is None
    assert api.get("/v1/system/status").status_code == 401


def operator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adtivity", *args], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120
    )


def test_operator_commands_create_a_company_show_the_pipeline_and_rebuild_rollups(api, settings, redis_client):
    api.user("owner@example.com")
    made = operator("create-company", "--owner-email", "Owner@example.com", "--name", "From the CLI")
    assert made.returncode == 0, made.stderr
    company = json.loads(made.stdout)
    answer = api.post(
        "/v1/events",
        auth=company["write_key"],
        json=[
            {
                "type": "page",
                "anonymous_id": f"a{i}",
                "timestamp": f"{dt.date.today() - dt.timedelta(days=3)}T10:00:00Z",
                "context": {"userAgent": CHROME},
            }
            for i in range(6)
        ],
    )
    assert answer.status_code == 200
    drain(settings, redis_client)

    status = operator("status")
    assert status.returncode == 0, status.stderr
    pipeline = json.loads(status.stdout)
    assert pipeline["dependencies"]["postgres"]["up"] and "queues" in pipeline and "rollups" in pipeline

    day = dt.date.today() - dt.timedelta(days=3)
    with database.connection_context():  # as for a company made before companies were made with a state
        RollupState.delete().where(RollupState.company_id == company["company_id"]).execute()
    rebuilt = operator(
        "rebuild-rollups",
        "--company",
        company["company_id"],
        "--from",
        str(day - dt.timedelta(days=1)),
        "--to",
        str(day),
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    overview = api.get(
        f"/v1/companies/{company['company_id']}/analytics/overview",
        auth=company["read_key"],
        params={"from": str(day), "to": str(day + dt.timedelta(days=1))},
    ).json
    assert overview["metrics"]["page_views"]["value"] == 6
    assert overview["as_of"] is not None  # rolled up over the trailing window too, never "not yet"
    assert operator("create-company", "--owner-email", "nobody@example.com", "--name", "x").returncode != 0
    assert (
        operator(
            "rebuild-rollups", "--company", company["company_id"], "--from", "2026-02-02", "--to", "2026-02-01"
        ).returncode
        != 0
    )


def test_operator_imports_an_ndjson_file_through_the_pipeline_and_replays_the_quarantine(
    api, settings, redis_client, tmp_path
):
    api.user("importer@example.com")
    company = json.loads(operator("create-company", "--owner-email", "importer@example.com", "--name", "Import").stdout)
    lines = [
        json.dumps(
            {
                "type": "track",
                "name": "Imported",
                "user_id": f"u{i}",
                "message_id": f"imp-{i}",
                "context": {"userAgent": CHROME},
            }
        )
        for i in range(25)
    ]
    lines.insert(7, '{"type": "track"')  # broken JSON
    lines.insert(12, json.dumps({"type": "no-such-type"}))
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join(lines) + "\n")
    imported = operator("import-events", "--company", company["company_id"], "--file", str(source), "--batch", "10")
    assert imported.returncode == 1  # some lines were rejected, and said so
    outcome = json.loads(imported.stdout)
    assert outcome["accepted"] == 25 and [r["line"] for r in outcome["rejected"]] == [8, 13]
    drain(settings, redis_client)
    assert stored(settings, company["company_id"]) == 25
    assert (
        operator("import-events", "--company", company["company_id"], "--file", str(source), "--batch", "0").returncode
        != 0
    )

    Quarantine.create(
        company_id=company["company_id"], stream=stream_key(0), entry_id="1-1", events=3, payload=b"x", reason="test"
    )
    replayed = operator("replay-quarantine", "--company", company["company_id"])
    assert replayed.returncode == 0 and json.loads(replayed.stdout) == {"entries": 1, "events": 3}
    assert redis_client.xlen(stream_key(0)) >= 1
    assert json.loads(operator("replay-quarantine").stdout) == {"entries": 0, "events": 0}


def hostile_lines(settings) -> list[str]:
    """Events each accept-path check refuses alone, around ones it takes."""

    def track(n: int, **fields) -> dict:
        return {"type": "track", "name": "Hostile", "user_id": "u", "message_id": f"h{n}", **fields}

    nested: dict = {}
    for _ in range(settings.max_json_depth + 3):
        nested = {"a": nested}
    return [
        json.dumps(event, separators=(",", ":"))
        for event in (
            track(0),
            track(1, properties=nested),  # deeper than MAX_JSON_DEPTH
            track(2, properties={"big": 2**70}),  # beyond 64 bits
            track(3, properties={"nul": "a\u0000b"}),
            track(4, properties={"pad": "x" * settings.ingest_max_event_bytes}),  # over INGEST_MAX_EVENT_BYTES
            {"type": "track", "name": "no identity"},
            track(6, timestamp="not a time"),
            track(7),
        )
    ]


def test_import_and_http_ingest_give_each_hostile_line_the_same_outcome(api, settings, tmp_path):
    api.user("hostile@example.com")
    company = json.loads(operator("create-company", "--owner-email", "hostile@example.com", "--name", "H").stdout)
    lines = hostile_lines(settings)
    source = tmp_path / "hostile.ndjson"
    source.write_text("\n".join(lines) + "\n")
    imported = json.loads(operator("import-events", "--company", company["company_id"], "--file", str(source)).stdout)
    answer = api.post(
        "/v1/events",
        auth=company["write_key"],
        body="[" + ",".join(lines) + "]",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    over_http = answer.json
    assert imported["accepted"] == over_http["accepted"]
    assert imported["rejected"] == [{"line": r["index"] + 1, "reason": r["reason"]} for r in over_http["rejected"]]
    reasons = {r["line"]: r["reason"] for r in imported["rejected"]}
    assert "levels deep" in reasons[2] and "64-bit" in reasons[3] and "larger than" in reasons[5]
    assert 1 not in reasons and 8 not in reasons


def test_a_backlog_redis_cannot_count_is_never_reported_empty(settings, redis_client):
    """Redis reports a group's lag as unknown (null) when entries after its position were deleted
    (and, as seen in the chaos runs, after a restart from its append-only file); the backlog must then
    still show entries that wait, and none when nothing follows."""
    stream = stream_key(0)
    first, second, third = (redis_client.xadd(stream, {"e": str(n)}) for n in range(3))
    redis_client.xgroup_create(stream, PERSIST_GROUP, id=first)
    redis_client.xdel(stream, second)
    assert redis_client.xinfo_groups(stream)[0]["lag"] is None
    group = stream_groups(settings, redis_client)[stream][PERSIST_GROUP]
    assert group == {"pending": 0, "lag": None} and group_backlog(group) == 1

    redis_client.xdel(stream, third)  # the stream's newest id is still the third's, but nothing follows the first
    assert redis_client.xinfo_groups(stream)[0]["lag"] is None
    group = stream_groups(settings, redis_client)[stream][PERSIST_GROUP]
    assert group == {"pending": 0, "lag": 0} and group_backlog(group) == 0


UNKNOWN_COMPANY = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "args, environment, says",
    [
        (["create-admin", "--email", "new@example.com"], {}, "a new user needs a password"),
        (["create-company", "--owner-email", "nobody@example.com", "--name", "X"], {}, "no user nobody@example.com"),
        (
            ["rebuild-rollups", "--company", "acme", "--from", "2026-01-02", "--to", "2026-01-03"],
            {},
            "not a company id",
        ),
        (
            ["rebuild-rollups", "--company", UNKNOWN_COMPANY, "--from", "2026-01-02", "--to", "2026-01-03"],
            {},
            f"no company {UNKNOWN_COMPANY}",
        ),
        (["rebuild-rollups", "--company", UNKNOWN_COMPANY, "--from", "2026-01-03", "--to", "2026-01-02"], {}, "--to"),
        (["replay-quarantine", "--company", UNKNOWN_COMPANY], {}, f"no company {UNKNOWN_COMPANY}"),
        (
            ["import-events", "--company", UNKNOWN_COMPANY, "--file", "events.ndjson"],
            {},
            f"no company {UNKNOWN_COMPANY}",
        ),
        (["import-events", "--company", "x", "--file", "x", "--batch", "0"], {}, "--batch must be 1 to"),
        (["rebuild-dedup", "--company", "acme"], {}, "not a company id"),
        (["status"], {"PORT": "eighty"}, "PORT must be a int"),
        (["migrate"], {"CLICKHOUSE_URL": "http://default:@127.0.0.1:1/adtivity_test"}, "OperationalError"),
    ],
)
def test_every_cli_failure_is_one_clear_line_and_a_non_zero_exit(settings, args, environment, says):
    done = subprocess.run(
        [sys.executable, "-m", "adtivity", *args],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert len(lines) == 1 and lines[0].startswith(f"adtivity {args[0]}: ") and says in lines[0], done.stderr


def test_a_missing_import_file_is_named(api, settings):
    company = api.company(api.user())
    done = operator("import-events", "--company", company, "--file", "no/such/file.ndjson")
    assert (done.returncode, done.stderr.strip()) == (1, "adtivity import-events: no such file: no/such/file.ndjson")
