"""Benchmark: what `POST /v1/auth/password-reset` costs for an email with an account and for one
without (a difference would tell an attacker which emails have accounts).

    .venv/bin/python bench/password_reset.py [--requests 500]

Registers one account in the bench database, then times the request in-process through the whole
Falcon app (middleware, per-address limit, body validation, the enqueue), alternating a known and an
unknown email so both see the same machine. Prints the median and p99 in microseconds of each and
their ratio, and records them in docs/benchmarks.md. The queued mails are not sent (no worker runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import falcon.testing
import redis
from common import bench_settings, percentile, prepare, record

from web.app import Deps, create_app


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    settings = bench_settings(login_rate_per_ip_per_minute=10**9)
    prepare(settings)
    client = falcon.testing.TestClient(create_app(Deps.from_settings(settings)))
    known = f"reset-bench-{time.time_ns()}@example.com"
    registered = client.simulate_post("/v1/auth/register", json={"email": known, "password": "a long bench passphrase"})
    assert registered.status_code == 201, registered.text
    samples: dict[str, list[float]] = {"known email": [], "unknown email": []}
    for n in range(args.requests):
        for case, email in (("known email", known), ("unknown email", f"nobody-{n}@example.com")):
            started = time.perf_counter()
            answer = client.simulate_post("/v1/auth/password-reset", json={"email": email})
            samples[case].append((time.perf_counter() - started) * 1e6)
            assert answer.status_code == 202, answer.text
    queue = f"{settings.dramatiq_namespace}:default"
    redis.Redis.from_url(settings.redis_url).delete(queue, f"{queue}.msgs")
    medians = {case: statistics.median(values) for case, values in samples.items()}
    lines = [
        f"Command: `.venv/bin/python bench/password_reset.py --requests {args.requests}`, in-process (Falcon "
        "test client, whole middleware stack), known and unknown emails alternating, 2 cores.",
        "",
        "| email | median µs | p99 µs |",
        "|---|---|---|",
        *(f"| {case} | {medians[case]:.0f} | {percentile(values, 0.99):.0f} |" for case, values in samples.items()),
        "",
        f"known/unknown median ratio: {medians['known email'] / medians['unknown email']:.2f}",
    ]
    print("\n".join(lines))
    record("Password reset: an email with an account against one without", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
