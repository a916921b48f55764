"""Prometheus metrics of the web process: requests and latencies by route and status (the events
ingest accepted and rejected are counted in ingest/accept.py).

With several gunicorn workers, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set up by web/gunicorn_conf.py) makes /metrics add up every worker.
"""

from __future__ import annotations

import os
import time

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from adtivity.metric_series import Series

# Label values come from closed sets: a made-up method counts as OTHER (routes are templates or
# "unmatched", statuses falcon's), so no caller can add series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUESTS = Counter("adtivity_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "adtivity_http_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RecordMetrics:
    """Middleware: counts every answered request under its route template (never the raw path).
    Runs after RequestId, which stamps req.context.started_at."""

    def __init__(self) -> None:
        self.requests = Series(REQUESTS)
        self.latency = Series(LATENCY)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        method = req.method if req.method in KNOWN_METHODS else "OTHER"
        self.requests[method, route, resp.status_code].inc()
        self.latency[method, route].observe(time.perf_counter() - req.context.started_at)


class MetricsEndpoint:
    PUBLIC = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(registry)
