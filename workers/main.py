"""The worker process's set-up, done explicitly at start (Dramatiq's command line calls `set_up` in each
worker process: `python -m workers`): logging, the Redis broker with the Lifecycle middleware, the
runtime the actors share, and every actor of workers/ declared on that broker."""

from __future__ import annotations

import dramatiq

from adtivity.errortracking import init_error_tracking
from adtivity.jobs import redis_broker
from adtivity.logs import configure_logging
from adtivity.settings import Settings
from workers import (
    chain,
    companies,
    dedup,
    entities,
    health,
    housekeeping,
    password_reset,
    persist,
    privacy,
    retention,
    rollups,
    trim,
)
from workers.lifecycle import Lifecycle
from workers.runtime import Runtime, install

ACTOR_MODULES = (
    chain,
    companies,
    dedup,
    entities,
    health,
    housekeeping,
    password_reset,
    persist,
    privacy,
    retention,
    rollups,
    trim,
)


def build_runtime(settings: Settings) -> Runtime:
    """A broker with every actor declared on it (it becomes Dramatiq's global broker), installed as
    the runtime the actors use."""
    broker = redis_broker(settings)
    broker.add_middleware(Lifecycle(settings))
    dramatiq.set_broker(broker)
    for module in ACTOR_MODULES:
        for function in vars(module).values():
            if callable(function) and hasattr(function, "actor_options") and function.__module__ == module.__name__:
                dramatiq.actor(function, actor_name=function.actor_name, broker=broker, **function.actor_options)
    runtime = Runtime(settings, broker)
    install(runtime)
    return runtime


def set_up() -> None:
    settings = Settings.from_env()
    configure_logging(settings, process="worker")
    init_error_tracking(settings, process="worker")
    build_runtime(settings)
