"""The built-in dashboard: `GET /app` answers its single page (web/dashboard/public/index.html) and
`/app/assets/...` its scripts, styles and the vendored chart library, all from this process (no CDN).

The page holds no data of its own: it logs in through /v1/auth and reads the same API as any client.
A strict Content-Security-Policy allows scripts, styles and requests from this origin only, so a
hostile string in an event (a name, a page path) can never run as script.
"""

from __future__ import annotations

from pathlib import Path

import falcon

PUBLIC = Path(__file__).resolve().parent.parent / "dashboard" / "public"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def secure(resp: falcon.Response) -> None:
    resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "same-origin")


class DashboardPage:
    PUBLIC = True

    def __init__(self) -> None:
        self._body = (PUBLIC / "index.html").read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The dashboard's page; its views (login, company, tabs) live in the URL's fragment."""
        resp.data = self._body
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        secure(resp)


def add_dashboard_routes(app: falcon.App) -> None:
    app.add_route("/app", DashboardPage())
    app.add_static_route("/app/assets", str(PUBLIC), fallback_filename=None)
