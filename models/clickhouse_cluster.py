"""Where ClickHouse rows live: one server, or a cluster (CLICKHOUSE_CLUSTER) of shards and replicas.

On a cluster each table of the migrations becomes two: `<name>_local`, a Replicated engine on every
node (ZooKeeper path `/clickhouse/tables/{shard}/<database>/<name>_local`, replica `{replica}`: the
node's macros), and `<name>`, a Distributed table over them. Every query reads and inserts through
the Distributed names, so the code is the same on one server; only what a Distributed table cannot do
goes to the local tables (`Layout.storage`: mutations and partition drops, ON CLUSTER) or to every
node (`Layout.system`: system tables). Materialized views run on each node, from `events_local` into
the local tables of the same shard.

Rows are sharded by company and identity (user id, else anonymous id): the events of one person and
that person's first-seen row sit on one shard, as do the ids the de-duplication look-up asks about
(event_ids is filled from events on each shard). Inserts wait until every shard has its rows
(`insert_distributed_sync`), so an insert that returned is stored, as on one server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from adtivity.settings import Settings
from models.clickhouse import database_name
from models.events_table import IDENTITY

# The sharding key of each Distributed table. Every table the migrations create must have one here.
SHARDING_KEYS = {
    "events": f"sipHash64(concat(toString(company_id), {IDENTITY}))",
    "event_ids": "sipHash64(concat(toString(company_id), message_id))",
    "identity_first_seen": "sipHash64(concat(toString(company_id), identity))",
    "tx_verifications": "sipHash64(concat(toString(company_id), chain_id, tx_hash))",
}
_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<name>\w+) (?P<columns>\(.*\))\s*ENGINE = (?P<engine>\w+)\((?P<args>[^)]*)\)"
    r"(?P<rest>.*)$",
    re.S,
)
# A migration's ADD COLUMN, or its cluster form (database-qualified, ON CLUSTER).
_ADD_COLUMN = re.compile(
    r"^ALTER TABLE (?:`\w+`\.)?(?P<name>\w+)(?: ON CLUSTER `[^`]+`)? ADD COLUMN (?P<column>\w+) (?P<definition>.*)$",
    re.S,
)
_CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<name>\w+) TO (?P<target>\w+) AS\s+(?P<select>.*)$", re.S
)


@dataclass(frozen=True)
class Layout:
    """`cluster` empty: one server. On a cluster, DDL names `database` (ON CLUSTER runs elsewhere)."""

    cluster: str = ""
    database: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.clickhouse_cluster, database_name(settings.clickhouse_url))

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def storage(self, table: str) -> str:
        """The table a mutation or a partition drop names: the table itself, or its local tables on
        every node."""
        return f"`{self.database}`.{table}_local{self.on_cluster}" if self.cluster else table

    def system(self, table: str) -> str:
        """A system table (e.g. "parts", "mutations") of this server, or of every node of the cluster."""
        return f"cluster('{self.cluster}', system.{table})" if self.cluster else f"system.{table}"

    def partitions(self, client: Client, table: str) -> list[str]:
        """The ids of the table's partitions that hold rows, on any node."""
        rows = client.query(
            f"SELECT DISTINCT partition_id FROM {self.system('parts')} "
            "WHERE database = %(database)s AND table = %(table)s AND active",
            parameters={"database": self.database, "table": f"{table}_local" if self.cluster else table},
        ).result_rows
        return sorted(row[0] for row in rows)

    def mutations_running(self, client: Client) -> int:
        """How many mutations of the database have not finished, on any node."""
        return int(
            client.query(
                f"SELECT count() FROM {self.system('mutations')} WHERE database = %(database)s AND NOT is_done",
                parameters={"database": self.database},
            ).result_rows[0][0]
        )

    @property
    def insert_settings(self) -> dict[str, int]:
        """Settings of an insert: on a cluster, return only once every shard has its rows."""
        return {"insert_distributed_sync": 1} if self.cluster else {}

    def migrations_table(self) -> str:
        """The statement that creates `schema_migrations` (replicated to every node of a cluster)."""
        columns = "(version String, applied_at DateTime DEFAULT now())"
        if not self.cluster:
            return f"CREATE TABLE IF NOT EXISTS schema_migrations {columns} ENGINE = MergeTree ORDER BY version"
        return (
            f"CREATE TABLE IF NOT EXISTS `{self.database}`.schema_migrations{self.on_cluster} {columns} ENGINE = "
            f"ReplicatedMergeTree('/clickhouse/tables/all/{self.database}/schema_migrations', '{{replica}}') "
            "ORDER BY version"
        )

    def statements(self, statement: str) -> list[str]:
        """A migration's statement as this layout runs it: itself on one server; on a cluster, a
        table as its local tables and a Distributed table, a view reading and writing local tables."""
        if not self.cluster:
            return [statement]
        db = f"`{self.database}`"
        table = _CREATE_TABLE.match(statement)
        if table:
            return self._table(**table.groupdict())
        view = _CREATE_VIEW.match(statement)
        if view:
            select = re.sub(
                r"\bFROM (\w+)\b",
                lambda found: f"FROM {db}.{found[1]}_local" if found[1] in SHARDING_KEYS else found[0],
                view["select"],
            )
            return [
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view['name']}{self.on_cluster} "
                f"TO {db}.{view['target']}_local AS {select}"
            ]
        column = _ADD_COLUMN.match(statement)
        if column:
            # ALTER ... ON CLUSTER runs once a shard, for replicated tables only: the Distributed table
            # (no data of its own) is made again from the altered local tables instead.
            return [
                f"ALTER TABLE {db}.{column['name']}_local{self.on_cluster} "
                f"ADD COLUMN {column['column']} {column['definition']}",
                f"DROP TABLE IF EXISTS {db}.{column['name']}{self.on_cluster}",
                self._distributed(column["name"]),
            ]
        if statement.startswith("INSERT INTO "):
            return [statement]  # through the Distributed tables
        raise ValueError(f"no cluster form for this migration statement: {statement[:80]!r}")

    def already_applied(self, client: Client, form: str) -> bool:
        """Whether `form` (a statement as `statements` gives it) adds a column the table has (ClickHouse
        18.16 has no `ADD COLUMN IF NOT EXISTS`; a run cut short repeats its migration)."""
        adds = _ADD_COLUMN.match(form)
        if not adds:
            return False
        found = client.query(
            "SELECT count() FROM system.columns WHERE database = %(database)s AND table = %(table)s "
            "AND name = %(column)s",
            parameters={"database": self.database, "table": adds["name"], "column": adds["column"]},
        ).result_rows[0][0]
        return bool(found)

    def _table(self, name: str, columns: str, engine: str, args: str, rest: str) -> list[str]:
        if name not in SHARDING_KEYS:
            raise ValueError(f"table {name!r} has no sharding key (models/clickhouse_cluster.py SHARDING_KEYS)")
        db = f"`{self.database}`"
        path = f"'/clickhouse/tables/{{shard}}/{self.database}/{name}_local', '{{replica}}'"
        replicated_args = f"{path}, {args}" if args.strip() else path
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{name}_local{self.on_cluster} {columns} "
            f"ENGINE = Replicated{engine}({replicated_args}){rest}",
            self._distributed(name),
        ]

    def _distributed(self, name: str) -> str:
        db = f"`{self.database}`"
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.{name}{self.on_cluster} AS {db}.{name}_local "
            f"ENGINE = Distributed({self.cluster}, {db}, {name}_local, {SHARDING_KEYS[name]})"
        )
