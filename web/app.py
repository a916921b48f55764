"""The Falcon app: `create_app(deps)` wires resources to what they need; `get_app()` builds the
dependencies from the environment (gunicorn serves "web.app:get_app()")."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import falcon
import peewee
import redis

from accounts.sessions import Accounts
from adtivity import querymetrics
from adtivity.errors import DomainError
from adtivity.errortracking import init_error_tracking
from adtivity.jobs import Jobs, redis_broker
from adtivity.logs import configure_logging, log_event
from adtivity.ratelimit import RateLimiter
from adtivity.settings import Settings
from ingest.accept import IngestPipeline
from ingest.enrich import Enricher
from ingest.geo import GeoIp
from models.clickhouse import ClientPool, PoolExhausted
from models.db import database, open_database, open_read_database, read_database, utcnow
from models.redis_client import UNAVAILABLE, redis_client
from queries.engine import QueryEngine
from web import openapi
from web.bodies import MsgspecJson, ValidateBody
from web.errors import handle_domain_error, handle_unavailable, handle_unexpected, serialize_error
from web.keycache import KeyCache
from web.metrics import MetricsEndpoint, RecordMetrics
from web.middleware import Cors, RequestId, ResponseHeaders, answering_head
from web.principals import Authenticate, KeyAuthenticator, KeyFailures
from web.resources import (
    analytics,
    auth,
    companies,
    drilldowns,
    events,
    health,
    keys,
    members,
    privacy,
    quarantine,
    query,
    realtime,
    sdk,
    segments,
    system,
    transactions,
)
from web.resources.dashboard import add_page_routes
from web.resources.ingest import TestEvents, ingest_routes

INGEST_PREFIXES = (
    "/v1/events",
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/sdk/",
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    redis: redis.Redis
    keys: KeyCache
    jobs: Jobs
    limiter: RateLimiter
    ingest: IngestPipeline
    clickhouse: ClientPool
    queries: QueryEngine

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], dt.datetime] = utcnow) -> Deps:
        """`clock` is what now is for key expiry (tests move it)."""
        querymetrics.configure(settings)
        open_database(settings.database_url, max_age=settings.database_max_connection_age_seconds)
        open_read_database(settings.database_read_url, max_age=settings.database_max_connection_age_seconds)
        # Short timeouts: with Redis gone, ingest must answer 503 within a second, not hang.
        client = redis_client(settings, timeout=0.5, connect_timeout=0.5, health_check_interval=30)
        querymetrics.watch_redis("redis", client)
        geoip = GeoIp(settings.geoip_database_path) if settings.geoip_database_path else None
        clickhouse = ClientPool(
            settings.clickhouse_url,
            size=settings.web_clickhouse_clients,
            wait=settings.web_clickhouse_wait_seconds,
            timeout=settings.query_timeout_seconds + 5,
        )
        return cls(
            settings=settings,
            redis=client,
            keys=KeyCache(
                client,
                ttl=settings.key_cache_seconds,
                usage_interval=settings.key_usage_interval_seconds,
                max_entries=settings.key_cache_max_entries,
                clock=clock,
            ),
            jobs=Jobs(redis_broker(settings)),
            limiter=RateLimiter(client),
            ingest=IngestPipeline(settings, client, Enricher(settings, geoip)),
            clickhouse=clickhouse,
            queries=QueryEngine(settings, client, clickhouse, lambda: clock().replace(tzinfo=dt.UTC)),
        )


class DatabaseConnection:
    """Middleware: hands the request's Postgres connection (opened on its first query, if any) back
    to the pool when the request ends. Ingest requests with a cached key never open one."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        for bound in {id(proxy.obj): proxy.obj for proxy in (database, read_database) if proxy.obj}.values():
            if not bound.is_closed():
                bound.close()


def create_app(deps: Deps) -> falcon.App:
    settings = deps.settings
    key_authenticator = KeyAuthenticator(deps.keys, KeyFailures(deps.limiter, settings))
    app = falcon.App(
        middleware=[
            RequestId(),
            RecordMetrics(),
            ResponseHeaders(hsts_seconds=settings.hsts_seconds),
            Cors(ingest_prefixes=INGEST_PREFIXES, allowed_origins=settings.cors_allowed_origins),
            DatabaseConnection(),
            Authenticate(settings, key_authenticator),
            ValidateBody(max_body_bytes=settings.max_body_bytes, max_json_depth=settings.max_json_depth),
        ]
    )
    json_handler = MsgspecJson(max_depth=settings.max_json_depth)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(DomainError, handle_domain_error)
    app.add_error_handler(peewee.OperationalError, handle_unavailable)
    app.add_error_handler(peewee.InterfaceError, handle_unavailable)
    for redis_unavailable in UNAVAILABLE:
        app.add_error_handler(redis_unavailable, handle_unavailable)
    app.add_error_handler(PoolExhausted, handle_unavailable)

    routes: list[tuple[str, object]] = []

    def route(path: str, resource) -> None:
        routes.append((path, resource))
        app.add_route(path, answering_head(resource))

    accounts = Accounts(settings)
    ip_limit = auth.PerIpLimit(deps.limiter, settings)

    route("/health", health.Health())
    route("/ready", health.Ready(settings, deps.redis))
    route("/metrics", MetricsEndpoint())
    route("/v1/system/status", system.SystemStatus(deps.redis))

    route("/v1/auth/register", auth.Register(accounts, ip_limit))
    route("/v1/auth/login", auth.Login(accounts, ip_limit))
    route("/v1/auth/refresh", auth.Refresh(accounts))
    route("/v1/auth/logout", auth.Logout(accounts))
    route("/v1/auth/password", auth.PasswordChange(accounts, ip_limit))
    route("/v1/auth/password-reset", auth.PasswordReset(deps.jobs, ip_limit))
    route("/v1/auth/password-reset/confirm", auth.PasswordResetConfirm(accounts, ip_limit))
    route("/v1/me", auth.Me())

    route("/v1/companies", companies.Companies(settings))
    route("/v1/companies/{company_id}", companies.CompanyItem(deps.jobs, deps.redis))
    route("/v1/companies/{company_id}/members", members.Members(settings))
    route("/v1/companies/{company_id}/members/{user_id}", members.MemberItem())
    route("/v1/companies/{company_id}/invites", members.Invites(settings))
    route("/v1/companies/{company_id}/transfer", members.OwnershipTransfer())
    route("/v1/invites/{token}/accept", members.InviteAccept())
    route("/v1/companies/{company_id}/keys", keys.Keys(settings))
    route("/v1/companies/{company_id}/keys/{key_id}", keys.KeyItem(deps.redis))
    route("/v1/companies/{company_id}/keys/{key_id}/rotate", keys.KeyRotate(settings, deps.redis))
    route("/v1/companies/{company_id}/test-events", TestEvents(deps.ingest))
    route("/v1/companies/{company_id}/events", events.Events(settings, deps.clickhouse))
    route("/v1/companies/{company_id}/realtime", realtime.Realtime(settings, deps.redis))
    route("/v1/companies/{company_id}/users/{user_id}", privacy.UserPrivacy(deps.jobs))
    route("/v1/companies/{company_id}/users/{user_id}/export", privacy.UserExport(deps.jobs))
    route("/v1/companies/{company_id}/privacy-requests/{request_id}", privacy.PrivacyRequestItem())
    route("/v1/companies/{company_id}/privacy-requests/{request_id}/download", privacy.PrivacyExportDownload())
    for path, drilldown in (
        ("funnel", drilldowns.Funnel),
        ("retention", drilldowns.Retention),
        ("wallets/{address}", drilldowns.Activity),
        ("contracts/{address}", drilldowns.ContractActivity),
    ):
        route(f"/v1/companies/{{company_id}}/drilldowns/{path}", drilldown(settings, deps.clickhouse))
    route(
        "/v1/companies/{company_id}/drilldowns/users/{user_id}/timeline",
        drilldowns.UserTimeline(settings, deps.clickhouse),
    )
    for name, resource in analytics.ROUTES.items():
        route(f"/v1/companies/{{company_id}}/analytics/{name}", resource(settings, deps.queries))
    route("/v1/companies/{company_id}/query", query.Query(deps.queries))
    route("/v1/companies/{company_id}/segments", segments.Segments(deps.queries))
    route("/v1/companies/{company_id}/segments/{segment_id}", segments.SegmentItem(deps.queries))
    route("/v1/companies/{company_id}/segments/{segment_id}/size", segments.SegmentSize(deps.queries))
    route("/v1/companies/{company_id}/transactions", transactions.Transactions(settings))
    route("/v1/companies/{company_id}/quarantine", quarantine.QuarantineList(settings))
    route("/v1/companies/{company_id}/quarantine/replay", quarantine.QuarantineReplay(settings, deps.redis))
    for path, resource in ingest_routes(settings, deps.ingest, key_authenticator).items():
        route(path, resource)
    route("/sdk/adtivity.js", sdk.BrowserSnippet())
    app.add_route("/openapi.json", answering_head(openapi.Document(routes)))
    add_page_routes(app)
    return app


def get_app() -> falcon.App:
    settings = Settings.from_env()
    configure_logging(settings, process="web")
    init_error_tracking(settings, process="web")
    app = create_app(Deps.from_settings(settings))
    log_event(log, "ready", port=settings.port)
    return app
