"""Benchmark: what a bad API key costs next to a good one, with many companies (a hole of the original
backend was a bcrypt check per company for every key presented: a denial-of-service lever).

    .venv/bin/python bench/keys.py [--companies 1000] [--requests 2000]

Makes the companies (each with a read key) directly in the bench database, then times
`GET /v1/companies/{id}` in-process through the whole Falcon app (middleware, key lookup, response)
for: a good key, an unknown public id, and a known public id with a wrong secret; each cold (the key
cache emptied before every request, so every request pays its Postgres lookup) and warm. Prints the
median and p99 in microseconds and records them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import falcon.testing
from common import bench_company, bench_settings, percentile, prepare, record

from accounts.security import new_key
from web.app import Deps, create_app


def timed(
    client: falcon.testing.TestClient, deps: Deps, path: str, key: str, requests: int, cold: bool, expected: int
) -> list[float]:
    samples = []
    for _ in range(requests):
        if cold:
            deps.keys.clear()
        started = time.perf_counter()
        answer = client.simulate_get(path, headers={"Authorization": f"Bearer {key}"})
        samples.append((time.perf_counter() - started) * 1e6)
        assert answer.status_code == expected, answer.text
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    settings = bench_settings(key_failures_per_ip_per_minute=10**9)
    prepare(settings)
    companies = [bench_company(settings, ("read",)) for _ in range(args.companies)]
    company_id, good = companies[-1]
    deps = Deps.from_settings(settings)
    client = falcon.testing.TestClient(create_app(deps))
    path = f"/v1/companies/{company_id}"
    cases = {
        "good key": (good, 200),
        "unknown public id": (new_key("read")[0], 401),
        "known id, wrong secret": (good.rsplit("_", 1)[0] + "_" + "0" * 64, 401),
    }
    lines = [
        f"Command: `.venv/bin/python bench/keys.py --companies {args.companies} --requests {args.requests}`, "
        "in-process (Falcon test client, whole middleware stack), 2 cores.",
        "",
        "| key | cache | median µs | p99 µs |",
        "|---|---|---|---|",
    ]
    for name, (key, status) in cases.items():
        for cold in (True, False):
            samples = timed(client, deps, path, key, args.requests, cold, status)
            lines.append(
                f"| {name} | {'cold' if cold else 'warm'} | {statistics.median(samples):.0f} | "
                f"{percentile(samples, 0.99):.0f} |"
            )
    print("\n".join(lines))
    record("API key cost: a bad key against a good one", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
