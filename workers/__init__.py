"""The worker processes' package (Dramatiq loads it; the Procfile starts Dramatiq through
adtivity/dramatiq_main.py): binds the Redis broker from Settings and loads every actor.

Dramatiq needs its broker before actors are declared, so this package does that on import; nothing
else imports it (web and scheduler enqueue by actor name through adtivity.jobs).
"""
import dramatiq

from adtivity.jobs import redis_broker
from adtivity.logs import configure_logging
from adtivity.settings import Settings
from workers.lifecycle import Lifecycle

settings = Settings.from_env()
configure_logging(settings, process="worker")
broker = redis_broker(settings.redis_url, settings.dramatiq_namespace)
broker.add_middleware(Lifecycle(settings))
dramatiq.set_broker(broker)

from workers import companies, entities, health, housekeeping, persist, privacy, retention, rollups, trim  # noqa: E402,F401  (declares the actors)
