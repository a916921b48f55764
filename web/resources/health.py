"""/health (liveness: touches nothing) and /ready (every dependency, with its latency)."""
from __future__ import annotations

import falcon

from adtivity.probes import probe_all
from adtivity.settings import Settings


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Ready:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = probe_all(self.settings)
        ready = all(r.up for r in results if r.required)
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "5")
        resp.media = {
            "status": "ready" if ready else "unavailable",
            "dependencies": {
                r.name: {"up": r.up, "required": r.required, "latency_ms": r.latency_ms, "error": r.error}
                for r in results
            },
        }
