"""The scheduler process (`python -m scheduler`): APScheduler jobs that only enqueue Dramatiq work."""
