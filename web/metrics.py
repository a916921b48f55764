"""Prometheus metrics of the web process: requests and latencies by route and status, and the
events ingest accepted and rejected.

With several gunicorn workers, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set up by web/gunicorn_conf.py) makes /metrics add up every worker.
"""
from __future__ import annotations

import os
import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

REQUESTS = Counter("adtivity_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
INGEST_EVENTS = Counter("adtivity_ingest_events_total", "Events ingest accepted or rejected one by one (a request "
                        "refused whole, 401/413/429/503, counts only in adtivity_http_requests_total)",
                        ["format", "outcome"])
LATENCY = Histogram(
    "adtivity_http_request_seconds", "Time to answer an HTTP request", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class Series(dict):
    """The children of a labelled metric, kept by their label values: `labels()` maps its arguments
    on every call, a dict look-up does not. The label values must be few (route templates, formats)."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, values: tuple):
        child = self[values] = self.metric.labels(*values)
        return child


class RecordMetrics:
    """Middleware: counts every answered request under its route template (never the raw path).
    Runs after RequestId, which stamps req.context.started_at."""

    def __init__(self) -> None:
        self.requests = Series(REQUESTS)
        self.latency = Series(LATENCY)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        self.requests[req.method, route, resp.status_code].inc()
        self.latency[req.method, route].observe(time.perf_counter() - req.context.started_at)


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
