"""Operator commands: migrations, platform admins. Each one builds what it needs from Settings."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from adtivity.logs import configure_logging
from adtivity.settings import Settings


def run_migrations(settings: Settings) -> dict[str, list[str]]:
    from models.clickhouse import clickhouse_client, database_name
    from models.db import ensure_database_exists, open_database
    from models.migrate import migrate_clickhouse, migrate_postgres

    ensure_database_exists(settings.database_url)
    applied = {"postgres": migrate_postgres(open_database(settings.database_url))}
    admin = clickhouse_client(settings.clickhouse_url, database="default")
    admin.command(f"CREATE DATABASE IF NOT EXISTS `{database_name(settings.clickhouse_url)}`")
    applied["clickhouse"] = migrate_clickhouse(clickhouse_client(settings.clickhouse_url))
    return applied


def make_platform_admin(settings: Settings, email: str, password: str | None) -> str:
    """Flags an existing user as platform admin, or creates one with `password`."""
    from models.db import open_database
    from web.accounts import Accounts

    open_database(settings.database_url)
    return Accounts(settings).make_platform_admin(email, password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adtivity", description="Adtivity operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending Postgres and ClickHouse migrations")
    admin = commands.add_parser("create-admin", help="create a platform admin, or flag an existing user as one")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password-stdin", action="store_true", help="read the new user's password from stdin")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    configure_logging(settings, process="cli")
    log = logging.getLogger("adtivity.cli")
    if args.command == "migrate":
        applied = run_migrations(settings)
        log.info("migrations done: postgres %s, clickhouse %s", applied["postgres"] or "none", applied["clickhouse"] or "none")
    elif args.command == "create-admin":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password (used only if the user is new): ") if sys.stdin.isatty() else None
        print(make_platform_admin(settings, args.email, password))
    return 0
