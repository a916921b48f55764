"""Operator commands: migrations, platform admins, companies with keys, the pipeline's status,
rebuilding rollups, replaying the quarantine and importing NDJSON events. Each one builds what it needs from Settings (and imports it lazily)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import sys

from adtivity.errors import DomainError, InvalidInput, NotFound
from adtivity.logs import configure_logging
from adtivity.settings import Settings, SettingsError


def run_migrations(settings: Settings) -> dict[str, list[str]]:
    from models.clickhouse import clickhouse_client, database_name
    from models.clickhouse_cluster import Layout
    from models.db import ensure_database_exists, open_database
    from models.migrate import migrate_clickhouse, migrate_postgres
    from models.redis_client import redis_client
    from models.redis_streams import tag_untagged_keys

    ensure_database_exists(settings.database_url)
    applied = {"postgres": migrate_postgres(open_database(settings.database_url))}
    admin = clickhouse_client(settings.clickhouse_url, database="default")
    layout = Layout.from_settings(settings)
    admin.command(f"CREATE DATABASE IF NOT EXISTS `{database_name(settings.clickhouse_url)}`{layout.on_cluster}")
    applied["clickhouse"] = migrate_clickhouse(clickhouse_client(settings.clickhouse_url), layout)
    if not settings.redis_cluster:
        applied["redis"] = tag_untagged_keys(redis_client(settings, timeout=30))
    return applied


def live_company(settings: Settings, company_id: str) -> str:
    """`company_id` as a live company's id; InvalidInput if it is not a UUID, NotFound if there is no
    such company (or it was deleted)."""
    import uuid

    from models.accounts import Company
    from models.db import database, open_database

    try:
        parsed = uuid.UUID(company_id)
    except ValueError:
        raise InvalidInput("invalid_company", f"{company_id!r} is not a company id (a UUID)") from None
    open_database(settings.database_url)
    with database.connection_context():
        if not Company.select().where(Company.id == parsed, Company.deleted_at.is_null()).exists():
            raise NotFound("unknown_company", f"no company {company_id}")
    return str(parsed)


def make_platform_admin(settings: Settings, email: str, password: str | None) -> str:
    """Flags an existing user as platform admin, or creates one with `password`."""
    from accounts.sessions import Accounts
    from models.db import open_database

    open_database(settings.database_url)
    return Accounts(settings).make_platform_admin(email, password)


def create_company(settings: Settings, owner_email: str, name: str) -> dict:
    """A company owned by an existing user, with a write and a read key (shown only here)."""
    from accounts.companies import create_company as create
    from accounts.keys import create_key
    from accounts.security import normalise_email
    from models.accounts import User
    from models.db import database, open_database

    open_database(settings.database_url)
    with database.connection_context(), database.atomic():
        owner = User.get_or_none(User.email == normalise_email(owner_email))
        if owner is None:
            raise NotFound("unknown_user", f"no user {owner_email}: register first, or use create-admin")
        company = create(owner, name, ip="cli")
        keys = {kind: create_key(company, kind, "created by the CLI", owner)[0] for kind in ("write", "read")}
    return {"company_id": str(company.id), "write_key": keys["write"], "read_key": keys["read"]}


def show_status(settings: Settings) -> dict:
    """Each dependency and the pipeline: stream backlogs per consumer group, queue depths, quarantine,
    real-time as-of, the companies whose rollups waited longest."""
    import dataclasses

    from adtivity.jobs import redis_broker
    from adtivity.pipeline_status import pipeline_status
    from adtivity.probes import probe_all
    from models.db import open_database
    from models.redis_client import redis_client

    open_database(settings.database_url)
    client = redis_client(settings, timeout=5)
    return {
        "dependencies": {r.name: dataclasses.asdict(r) for r in probe_all(settings)},
        **pipeline_status(settings, client, redis_broker(settings)),
    }


def rebuild_rollups(
    settings: Settings, company_id: str, first: dt.date, last: dt.date, *, progress: bool = True
) -> int:
    """Recomputes a company's rollups day by day from `first` to `last` (UTC days, both included).
    A company never rolled up (no state) is then rolled up over the trailing window too, so its
    answers say how complete they are."""
    from tqdm import tqdm

    from models.clickhouse import clickhouse_client
    from models.db import database, open_database
    from models.redis_client import redis_client
    from models.rollups import RollupState
    from rollups.compute import rollup_company_now

    if last < first:
        raise InvalidInput("invalid_range", "--to must not be before --from")
    company_id = live_company(settings, company_id)
    open_database(settings.database_url)
    client = redis_client(settings, timeout=10)
    clickhouse = clickhouse_client(settings.clickhouse_url, timeout=settings.rollup_query_timeout_seconds + 10)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    rows = 0
    for day in tqdm(days, desc="rolling up", unit="day", disable=not progress):
        start = dt.datetime.combine(day, dt.time())
        rows += rollup_company_now(
            settings, client, clickhouse, company_id, start=start, end=start + dt.timedelta(days=1)
        )["rows"]
    with database.connection_context():
        never_rolled_up = not RollupState.select().where(RollupState.company_id == company_id).exists()
    if never_rolled_up:
        rows += rollup_company_now(settings, client, clickhouse, company_id)["rows"]
    return rows


def replay_quarantine(settings: Settings, company_id: str | None) -> tuple[int, int]:
    import uuid

    from adtivity.replay import replay_quarantined
    from models.db import open_database
    from models.redis_client import redis_client

    company = uuid.UUID(live_company(settings, company_id)) if company_id else None
    open_database(settings.database_url)
    return replay_quarantined(redis_client(settings, timeout=10), company)


def import_events(settings: Settings, company_id: str, path: str, *, batch: int, progress: bool = True) -> dict:
    """Sends an NDJSON file of events (the native format, one a line) through the accept path HTTP
    ingest uses (size, depth, validation, enrichment, sessions, the stream), `batch` lines a request,
    waiting out the rate limit. Lines refused are reported by number, never dropped silently."""
    import os
    import time
    import uuid

    from tqdm import tqdm

    from adtivity.errors import RateLimited
    from ingest.accept import IngestPipeline, NoValidEvents
    from ingest.enrich import Enricher, RequestInfo
    from ingest.formats import Items, build_native
    from models.db import utcnow
    from models.redis_client import redis_client

    company_id = live_company(settings, company_id)
    if not os.path.isfile(path):
        raise InvalidInput("no_file", f"no such file: {path}")
    pipeline = IngestPipeline(settings, redis_client(settings, timeout=10), Enricher(settings))
    outcome: dict = {"accepted": 0, "rejected": []}

    def send(numbers: list[int], lines: list[bytes]) -> None:
        items = Items(lines, "native")
        while True:
            request = RequestInfo(
                company_id=company_id,
                received_at=utcnow().replace(tzinfo=dt.UTC),
                sent_at=None,
                user_agent="",
                ip="",
                country="",
                request_id=f"import-{uuid.uuid4().hex[:12]}",
            )
            try:
                sent = pipeline.accept(f"import:{company_id}", items, lambda raw: build_native(items, raw), request)
                accepted, rejected = sent.accepted, sent.rejected
            except RateLimited:
                time.sleep(1)
                continue
            except NoValidEvents as refused:
                accepted, rejected = 0, refused.rejected
            outcome["accepted"] += accepted
            outcome["rejected"] += [
                {"line": numbers[problem["index"]], "reason": problem["reason"]} for problem in rejected
            ]
            return

    numbers: list[int] = []
    lines: list[bytes] = []
    with (
        open(path, "rb") as source,
        tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc="importing", disable=not progress) as bar,
    ):
        for number, line in enumerate(source, start=1):
            bar.update(len(line))
            if not line.strip():
                continue
            numbers.append(number)
            lines.append(line.rstrip(b"\r\n"))
            if len(lines) >= batch:
                send(numbers, lines)
                numbers, lines = [], []
        if lines:
            send(numbers, lines)
    return outcome


def rebuild_dedup(settings: Settings, company_id: str | None, *, progress: bool) -> dict:
    """Refills the de-duplication filters (every shard's, or `company_id`'s ids into its shard's)
    from ClickHouse; see dedup/rebuild.py."""
    from dedup.rebuild import Rebuild
    from models.clickhouse import clickhouse_client
    from models.redis_client import redis_client

    if company_id:
        company_id = live_company(settings, company_id)
    rebuild = Rebuild(
        settings,
        redis_client(settings, timeout=60),
        clickhouse_client(settings.clickhouse_url, timeout=600),
    )
    report = rebuild.run(company_id, progress=progress)
    return {"ids": report.ids, "shards": report.shards, "lost_meanwhile": report.lost_meanwhile}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adtivity", description="Adtivity operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending Postgres and ClickHouse migrations")
    admin = commands.add_parser("create-admin", help="create a platform admin, or flag an existing user as one")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password-stdin", action="store_true", help="read the new user's password from stdin")
    company = commands.add_parser("create-company", help="create a company with a write and a read key")
    company.add_argument("--owner-email", required=True, help="an existing user, who becomes the owner")
    company.add_argument("--name", required=True)
    commands.add_parser("status", help="dependencies, stream backlogs, queues, quarantine, rollups (JSON)")
    rebuild = commands.add_parser("rebuild-rollups", help="recompute a company's rollups for a range of UTC days")
    rebuild.add_argument("--company", required=True)
    rebuild.add_argument("--from", dest="first", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    rebuild.add_argument("--to", dest="last", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD, included")
    replay = commands.add_parser("replay-quarantine", help="send quarantined entries through the pipeline again")
    replay.add_argument("--company", help="only this company's (default: every company's)")
    load = commands.add_parser("import-events", help="send an NDJSON file of events through the ingest pipeline")
    load.add_argument("--company", required=True)
    load.add_argument("--file", required=True)
    load.add_argument("--batch", type=int, default=500, help="events a write (at most INGEST_MAX_BATCH)")
    dedup = commands.add_parser(
        "rebuild-dedup", help="refill the de-duplication filters from ClickHouse (after Redis lost them)"
    )
    dedup.add_argument("--company", help="only this company's ids (default: every shard, every company)")
    parser.add_argument("--traceback", action="store_true", help="on failure, the whole traceback, not one line")
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.traceback:
            raise
        print(f"adtivity {args.command}: {failure(error)}", file=sys.stderr)
        return 1


def failure(error: Exception) -> str:
    """One line that says what went wrong: a domain error's or a setting's own message, otherwise the
    kind of error and the first line of its text (a store that does not answer, a bug)."""
    if isinstance(error, DomainError):
        return error.message
    if isinstance(error, SettingsError):
        return str(error)
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(settings, process="cli")
    log = logging.getLogger("adtivity.cli")
    if args.command == "migrate":
        applied = run_migrations(settings)
        log.info(
            "migrations done: postgres %s, clickhouse %s",
            applied["postgres"] or "none",
            applied["clickhouse"] or "none",
        )
    elif args.command == "create-admin":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password (used only if the user is new): ") if sys.stdin.isatty() else None
        print(make_platform_admin(settings, args.email, password))
    elif args.command == "create-company":
        print(json.dumps(create_company(settings, args.owner_email, args.name), indent=2))
    elif args.command == "status":
        print(json.dumps(show_status(settings), indent=2, default=str))
    elif args.command == "rebuild-rollups":
        rows = rebuild_rollups(settings, args.company, args.first, args.last, progress=sys.stderr.isatty())
        log.info("rollups rebuilt: %s rows and sketches", rows)
    elif args.command == "replay-quarantine":
        entries, events = replay_quarantine(settings, args.company)
        print(json.dumps({"entries": entries, "events": events}))
    elif args.command == "import-events":
        if not 1 <= args.batch <= settings.ingest_max_batch:
            raise InvalidInput("invalid_batch", f"--batch must be 1 to {settings.ingest_max_batch}")
        outcome = import_events(settings, args.company, args.file, batch=args.batch, progress=sys.stderr.isatty())
        print(json.dumps(outcome))
        return 1 if outcome["rejected"] else 0
    elif args.command == "rebuild-dedup":
        outcome = rebuild_dedup(settings, args.company, progress=sys.stderr.isatty())
        print(json.dumps(outcome))
        return 1 if outcome["lost_meanwhile"] else 0
    return 0
