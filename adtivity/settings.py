"""Settings: every environment variable the system reads, read here and nowhere else.

`.env.example` documents each one. `Settings.from_env()` validates them once at start-up; a process
that is misconfigured stops with a message naming the variable, before it serves anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "test", "production")


class SettingsError(ValueError):
    """A setting is missing or invalid."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    adtivity_env: str = "production"
    # Addresses of the services.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/adtivity"
    # The analytics API's reads of the rollups, from a streaming replica; empty means DATABASE_URL.
    database_read_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # REDIS_URL names one node of a Redis Cluster (models/redis_client.py).
    redis_cluster: bool = False
    # More nodes of the Redis Cluster to discover it from (host:port,...), when REDIS_URL's is down.
    redis_cluster_nodes: tuple[str, ...] = ()
    # Dramatiq's queues: a plain Redis (its broker does not speak Redis Cluster); empty means REDIS_URL.
    dramatiq_redis_url: str = ""
    clickhouse_url: str = "http://default:@127.0.0.1:8123/adtivity"
    # A ClickHouse cluster's name (its remote_servers entry): tables are ReplicatedMergeTree on each
    # node and Distributed over them (models/clickhouse_cluster.py). Empty: one server.
    clickhouse_cluster: str = ""
    kafka_broker_url: str = "kafka://127.0.0.1:19092"
    # Dramatiq queues live under this Redis key namespace.
    dramatiq_namespace: str = "adtivity"
    # The web process.
    port: int = 8000
    web_workers: int = 2
    web_worker_connections: int = 1000
    web_keepalive_requests: int = 100
    web_reuse_port: bool = True
    cors_allowed_origins: tuple[str, ...] = ()
    # Strict-Transport-Security's max-age on every answer, once the API is served over HTTPS only (0: none).
    hsts_seconds: int = 0
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    # Auth.
    jwt_secret: str = field(default="", repr=False)
    jwt_issuer: str = "adtivity"
    jwt_audience: str = "adtivity-api"
    access_token_seconds: int = 900
    refresh_token_seconds: int = 30 * 86400
    bcrypt_rounds: int = 12
    password_min_length: int = 10
    login_max_failures: int = 5
    login_failure_window_seconds: int = 900
    login_rate_per_ip_per_minute: int = 30
    password_hash_concurrency: int = 2
    password_hash_wait_seconds: float = 5.0
    reset_token_seconds: int = 3600
    invite_token_seconds: int = 7 * 86400
    public_base_url: str = "http://127.0.0.1:8000"
    # API keys.
    key_cache_seconds: int = 30
    key_cache_max_entries: int = 100_000
    key_failures_per_ip_per_minute: int = 60
    key_rotation_grace_seconds: int = 86400
    key_usage_interval_seconds: int = 60
    # Ingest.
    ingest_max_batch: int = 500
    ingest_max_event_bytes: int = 32_768
    ingest_rate_per_key_per_second: int = 5_000
    ingest_burst_seconds: int = 10
    ingest_max_future_seconds: int = 600
    ingest_max_age_days: int = 30
    stream_shards: int = 1
    session_timeout_seconds: int = 1800
    anonymise_ip: bool = True
    country_headers: tuple[str, ...] = (
        "CF-IPCountry",
        "CloudFront-Viewer-Country",
        "X-Vercel-IP-Country",
        "X-Country-Code",
    )
    geoip_database_path: str = ""
    user_agent_cache_size: int = 20_000
    # Persistence (workers).
    persist_batch_events: int = 20_000
    persist_batch_seconds: float = 1.0
    persist_pump_seconds: float = 10.0
    persist_claim_idle_seconds: int = 60
    persist_max_failures: int = 5
    dedup_retention_days: int = 35
    # De-duplication filters (dedup/filter.py).
    dedup_window_days: int = 7
    dedup_filter_ids_per_day: int = 2_000_000
    dedup_filter_bits_per_id: int = 24
    dedup_settle_seconds: int = 120
    dedup_check_seconds: int = 300
    persist_ensure_seconds: int = 5
    housekeeping_keep_days: int = 30
    housekeeping_seconds: int = 3600
    stream_trim_seconds: int = 60
    # Rollups (rollups/compute.py) and retention.
    rollup_every_seconds: int = 300
    rollup_window_hours: int = 48
    rollup_max_values: int = 500
    rollup_hll_lg_k: int = 12
    rollup_query_timeout_seconds: int = 120
    retention_every_seconds: int = 21_600
    # Privacy requests (workers/privacy.py).
    privacy_export_max_bytes: int = 100 * 1024 * 1024
    privacy_mutation_timeout_seconds: int = 600
    # The analytics API.
    analytics_max_days: int = 400
    analytics_max_points: int = 1_000
    analytics_breakdown_max: int = 100
    analytics_cache_seconds: int = 900
    drilldown_max_rows: int = 1_000
    drilldown_max_steps: int = 10
    # The query API (queries/) and saved segments.
    query_max_dimensions: int = 3
    query_max_filters: int = 20
    query_max_filter_values: int = 100
    query_max_rows: int = 10_000
    query_live_cache_seconds: int = 10
    segment_max_members: int = 10_000
    # On-chain verification (chain/): JSON-RPC endpoints as chain_id=url pairs (a chain may have several,
    # tried in turn); confirmations for finality as chain_id=n pairs, CHAIN_DEFAULT_CONFIRMATIONS for
    # the others. A chain without an endpoint is not verified: its transactions say "unverified".
    chain_rpc_urls: tuple[str, ...] = field(default=(), repr=False)
    chain_confirmations: tuple[str, ...] = ()
    chain_default_confirmations: int = 12
    # Seconds between blocks as chain_id=seconds pairs (e.g. 1=12,8453=2), CHAIN_DEFAULT_BLOCK_SECONDS for
    # the others: a reported hash is first looked up when it should be final (confirmations x this after
    # the report), so most cost one receipt and their share of a block (0: look at once).
    chain_block_seconds: tuple[str, ...] = ()
    chain_default_block_seconds: float = 12.0
    chain_poll_seconds: int = 15
    # A hash the chain has not seen this long after it was first reported is "not_found".
    chain_unseen_timeout_seconds: int = 3600
    # Hashes looked up in one batched JSON-RPC request, and at most this many of one company's per round.
    chain_batch_size: int = 100
    chain_max_checks_per_company: int = 500
    # Hashes verified per round of one chain (a round ends sooner when nothing more is due).
    chain_max_checks_per_round: int = 2_000
    chain_rpc_timeout_seconds: float = 10.0
    # A hash not yet mined is looked up again after CHAIN_POLL_SECONDS x 2^lookups, at most this long.
    chain_max_backoff_seconds: int = 600
    # Reading events back.
    events_page_max: int = 1_000
    query_timeout_seconds: int = 10
    web_clickhouse_clients: int = 8
    web_clickhouse_wait_seconds: float = 5.0
    # Lists.
    page_size_default: int = 50
    page_size_max: int = 200
    # Dependency probes (/ready and the scheduler's health check).
    probe_timeout_seconds: float = 1.0
    # The streams process.
    streams_app_id: str = "adtivity-streams"
    streams_data_dir: str = ".data/streams"
    kafka_producer_max_batch_size: int = 1
    kafka_replication_factor: int = 1
    realtime_partitions: int = 4
    realtime_read_entries: int = 500
    realtime_message_max_bytes: int = 524_288
    realtime_publish_seconds: float = 0.25
    realtime_stale_seconds: int = 10
    realtime_bridge_lease_seconds: float = 6.0
    realtime_hll_lg_k: int = 12
    realtime_max_keys: int = 1_000
    # Prometheus metrics of the background processes (0 turns a process's off).
    worker_metrics_port: int = 9101
    streams_metrics_port: int = 9102
    scheduler_metrics_port: int = 9103
    # The scheduler.
    health_check_seconds: int = 15
    scheduler_lease_seconds: int = 20
    scheduler_leader_check_seconds: int = 5
    # Error tracking (adtivity/errortracking.py): a Sentry DSN; empty sends nothing.
    sentry_dsn: str = field(default="", repr=False)
    sentry_release: str = ""
    # Database monitoring (adtivity/querymetrics.py): a query slower than this is logged (0: never).
    slow_query_ms_postgres: int = 200
    slow_query_ms_clickhouse: int = 2_000
    # A pooled Postgres connection older than this is closed instead of being lent again.
    database_max_connection_age_seconds: int = 300
    # Logs.
    log_level: str = "INFO"
    log_format: str = "json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raises SettingsError for the first rule these settings break."""
        for broken, message in self.rules():
            if broken:
                raise SettingsError(message)
        for name in (
            "database_url",
            "database_read_url",
            "redis_url",
            "clickhouse_url",
            "kafka_broker_url",
            "dramatiq_redis_url",
        ):
            url = urlsplit(getattr(self, name))
            in_process = name == "clickhouse_url" and url.scheme == "chdb"  # the tests' second engine
            if getattr(self, name) and not url.hostname and not in_process:
                raise SettingsError(f"{name.upper()} has no host: {getattr(self, name)!r}")

    def rules(self) -> list[tuple[bool, str]]:
        """(broken, what the rule says), in the order they are checked."""
        return [
            (
                self.adtivity_env not in ENVIRONMENTS,
                f"ADTIVITY_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.adtivity_env!r}",
            ),
            (
                not self.jwt_secret,
                "JWT_SECRET must be set, in every environment (32 or more random characters; "
                "`make run` writes one of its own to .env)",
            ),
            (bool(self.jwt_secret) and len(self.jwt_secret) < 32, "JWT_SECRET must be at least 32 characters"),
            (
                not 1 <= self.access_token_seconds <= 900,
                "ACCESS_TOKEN_SECONDS must be between 1 and 900 (access tokens live at most 15 minutes)",
            ),
            (
                self.redis_cluster and not self.dramatiq_redis_url,
                "DRAMATIQ_REDIS_URL must name a plain Redis when REDIS_CLUSTER is on "
                "(Dramatiq's broker does not speak Redis Cluster)",
            ),
            (
                not all(_host_and_port(node) for node in self.redis_cluster_nodes),
                "REDIS_CLUSTER_NODES must be host:port pairs separated by commas",
            ),
            (self.kafka_replication_factor < 1, "KAFKA_REPLICATION_FACTOR must be at least 1"),
            (self.realtime_bridge_lease_seconds <= 0, "REALTIME_BRIDGE_LEASE_SECONDS must be more than 0"),
            (self.hsts_seconds < 0, "HSTS_SECONDS must be 0 or more"),
            (self.slow_query_ms_postgres < 0, "SLOW_QUERY_MS_POSTGRES must be 0 or more"),
            (self.slow_query_ms_clickhouse < 0, "SLOW_QUERY_MS_CLICKHOUSE must be 0 or more"),
            (self.database_max_connection_age_seconds < 1, "DATABASE_MAX_CONNECTION_AGE_SECONDS must be at least 1"),
            (self.web_clickhouse_clients < 1, "WEB_CLICKHOUSE_CLIENTS must be at least 1"),
            (self.web_clickhouse_wait_seconds < 0, "WEB_CLICKHOUSE_WAIT_SECONDS must be 0 or more"),
            (
                not 1 <= self.ingest_max_batch <= 65_536,
                "INGEST_MAX_BATCH must be between 1 and 65536 "
                "(new session ids number a request's events in four hex digits)",
            ),
            (
                not 2 <= self.max_json_depth <= 200,
                "MAX_JSON_DEPTH must be between 2 and 200 (deeper JSON would reach Python's "
                "recursion limit when decoded)",
            ),
            (self.persist_batch_events < 1, "PERSIST_BATCH_EVENTS must be at least 1"),
            (
                self.persist_batch_seconds <= 0,
                "PERSIST_BATCH_SECONDS must be more than 0 (a batch that may not wait reads nothing)",
            ),
            (self.web_worker_connections < 1, "WEB_WORKER_CONNECTIONS must be at least 1"),
            (self.web_keepalive_requests < 1, "WEB_KEEPALIVE_REQUESTS must be at least 1"),
            (
                not 1 <= self.dedup_window_days <= self.dedup_retention_days,
                "DEDUP_WINDOW_DAYS must be between 1 and DEDUP_RETENTION_DAYS (the exact store keeps ids that long)",
            ),
            (self.dedup_filter_ids_per_day < 1, "DEDUP_FILTER_IDS_PER_DAY must be at least 1"),
            (not 4 <= self.dedup_filter_bits_per_id <= 32, "DEDUP_FILTER_BITS_PER_ID must be between 4 and 32"),
            (
                self.dedup_filter_ids_per_day * self.dedup_window_days / 3 * self.dedup_filter_bits_per_id >= 2**32,
                "a de-duplication filter generation (DEDUP_FILTER_IDS_PER_DAY x DEDUP_WINDOW_DAYS / 3 x "
                "DEDUP_FILTER_BITS_PER_ID bits) must stay under Redis's 512 MB string: add STREAM_SHARDS",
            ),
            (self.dedup_settle_seconds < 1, "DEDUP_SETTLE_SECONDS must be at least 1"),
            (self.dedup_check_seconds < 1, "DEDUP_CHECK_SECONDS must be at least 1"),
            (self.password_hash_concurrency < 1, "PASSWORD_HASH_CONCURRENCY must be at least 1"),
            (self.password_hash_wait_seconds < 0, "PASSWORD_HASH_WAIT_SECONDS must be 0 or more"),
            (not 4 <= self.bcrypt_rounds <= 16, "BCRYPT_ROUNDS must be between 4 and 16"),
            (
                not _valid_chain_pairs(self.chain_rpc_urls, _http_url),
                "CHAIN_RPC_URLS must be chain_id=url pairs separated by commas (e.g. 1=https://rpc.example)",
            ),
            (
                not _valid_chain_pairs(self.chain_confirmations, _positive_count),
                "CHAIN_CONFIRMATIONS must be chain_id=count pairs separated by commas (e.g. 1=12,10=5)",
            ),
            (self.chain_default_confirmations < 1, "CHAIN_DEFAULT_CONFIRMATIONS must be at least 1"),
            (
                not _valid_chain_pairs(self.chain_block_seconds, _seconds),
                "CHAIN_BLOCK_SECONDS must be chain_id=seconds pairs separated by commas (e.g. 1=12,8453=2)",
            ),
            (self.chain_default_block_seconds < 0, "CHAIN_DEFAULT_BLOCK_SECONDS must be 0 or more"),
            (self.chain_poll_seconds < 1, "CHAIN_POLL_SECONDS must be at least 1"),
            (self.chain_unseen_timeout_seconds < 1, "CHAIN_UNSEEN_TIMEOUT_SECONDS must be at least 1"),
            (not 1 <= self.chain_batch_size <= 1_000, "CHAIN_BATCH_SIZE must be between 1 and 1000"),
            (self.chain_max_checks_per_company < 1, "CHAIN_MAX_CHECKS_PER_COMPANY must be at least 1"),
            (self.chain_max_checks_per_round < 1, "CHAIN_MAX_CHECKS_PER_ROUND must be at least 1"),
            (self.chain_rpc_timeout_seconds <= 0, "CHAIN_RPC_TIMEOUT_SECONDS must be more than 0"),
            (self.chain_max_backoff_seconds < 1, "CHAIN_MAX_BACKOFF_SECONDS must be at least 1"),
            (
                self.adtivity_env == "production" and self.bcrypt_rounds < 12,
                "BCRYPT_ROUNDS must be at least 12 in production",
            ),
        ]

    @property
    def is_development(self) -> bool:
        return self.adtivity_env in ("development", "test")

    @property
    def dramatiq_redis(self) -> str:
        """Where Dramatiq's queues live."""
        return self.dramatiq_redis_url or self.redis_url

    @property
    def chain_rpc(self) -> dict[str, tuple[str, ...]]:
        """Chain id -> its JSON-RPC endpoints, in the order given."""
        endpoints: dict[str, tuple[str, ...]] = {}
        for chain, url in _chain_pairs(self.chain_rpc_urls):
            endpoints[chain] = (*endpoints.get(chain, ()), url)
        return endpoints

    def confirmations(self, chain_id: str) -> int:
        """Blocks on top of (and including) a transaction's before it counts as final on `chain_id`."""
        given = _for_chain(self.chain_confirmations, chain_id)
        return self.chain_default_confirmations if given is None else int(given)

    def block_seconds(self, chain_id: str) -> float:
        """The time between blocks on `chain_id`."""
        given = _for_chain(self.chain_block_seconds, chain_id)
        return self.chain_default_block_seconds if given is None else float(given)

    @property
    def kafka_bootstrap(self) -> str:
        parts = urlsplit(self.kafka_broker_url)
        return f"{parts.hostname}:{parts.port or 9092}"


def _host_and_port(node: str) -> bool:
    host, _, port = node.rpartition(":")
    return bool(host) and port.isdigit()


def _chain_pairs(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    """chain_id=value pairs as (chain id, value)."""
    return [(chain.strip(), value.strip()) for chain, _, value in (pair.partition("=") for pair in pairs)]


def _for_chain(pairs: tuple[str, ...], chain_id: str) -> str | None:
    """The value of `chain_id` in chain_id=value pairs, or None."""
    return next((value for chain, value in _chain_pairs(pairs) if chain == chain_id), None)


def _valid_chain_pairs(pairs: tuple[str, ...], valid_value: Callable[[str], bool]) -> bool:
    return all(chain.isdigit() and valid_value(value) for chain, value in _chain_pairs(pairs))


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _positive_count(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


def _seconds(value: str) -> bool:
    try:
        return float(value) >= 0
    except ValueError:
        return False


def _parse(name: str, kind: str, raw: str) -> object:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if kind == "tuple[str, ...]":
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        return raw
    except ValueError:
        raise SettingsError(f"{name.upper()} must be a {kind}, not {raw!r}") from None
