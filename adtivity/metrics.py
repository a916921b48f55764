"""Prometheus metrics of the background processes (worker, streams, scheduler); the web process has
its own (web/metrics.py, served at /metrics). Each background process serves its registry over HTTP
on its own port (WORKER_METRICS_PORT, STREAMS_METRICS_PORT, SCHEDULER_METRICS_PORT; 0 turns it off),
on 127.0.0.1 in development and 0.0.0.0 otherwise. A port already taken is logged, not fatal."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from adtivity.logs import log_event
from adtivity.settings import Settings

log = logging.getLogger(__name__)

PUMP_EVENTS = Counter("adtivity_pump_events_total", "Events stored by a pump", ["pump"])
PUMP_BATCH_EVENTS = Histogram(
    "adtivity_pump_batch_events",
    "Events in a stored batch",
    ["pump"],
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
PUMP_BATCH_SECONDS = Histogram(
    "adtivity_pump_batch_seconds",
    "Time to store and acknowledge a batch",
    ["pump"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REPEATED_HAND_OVERS = Counter(
    "adtivity_repeated_hand_overs_total",
    "Events-stream entries the entities pump received more than once (each would be counted twice in real time)",
)
QUARANTINED = Counter("adtivity_quarantined_entries_total", "Stream entries sent to the quarantine", ["pump"])
ROLLUP_SECONDS = Histogram(
    "adtivity_rollup_seconds",
    "Time to recompute one company's rollups",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CHAIN_RPC_CALLS = Counter(
    "adtivity_chain_rpc_calls_total", "JSON-RPC calls made to verify transactions", ["chain", "method"]
)
CHAIN_RPC_FAILURES = Counter(
    "adtivity_chain_rpc_failures_total", "Batched JSON-RPC requests an endpoint failed to answer", ["chain"]
)
CHAIN_VERIFIED = Counter(
    "adtivity_chain_transactions_final_total", "Transactions given a final state by the verifier", ["chain", "state"]
)
STREAM_BACKLOG = Gauge(
    "adtivity_stream_backlog_entries",
    "Entries a consumer group has not acknowledged (pending or not yet read), at the latest health check",
    ["stream", "group"],
)
QUARANTINE_WAITING = Gauge(
    "adtivity_quarantine_waiting_entries", "Quarantined entries not replayed, at the latest health check"
)
REALTIME_MESSAGES = Counter("adtivity_realtime_messages_total", "Bridge messages applied to the real-time buckets")
REALTIME_SECONDS_BEHIND = Gauge(
    "adtivity_realtime_seconds_behind", "How far the real-time snapshots are behind, as published"
)
SCHEDULED = Counter("adtivity_scheduler_jobs_total", "Periodic jobs run by the leading scheduler", ["job"])


def serve(settings: Settings, port: int, process: str) -> None:
    if not port:
        return
    address = "127.0.0.1" if settings.is_development else "0.0.0.0"
    try:
        start_http_server(port, addr=address)
    except OSError as error:
        log_event(
            log,
            "metrics port unavailable; metrics not served",
            level=logging.WARNING,
            process=process,
            port=port,
            error=str(error),
        )
        return
    log_event(log, "metrics served", process=process, port=port)
