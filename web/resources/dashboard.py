"""The built-in pages: `GET /app` answers the dashboard's single page (web/dashboard/public/index.html),
as do the paths of the links in mails (`/app/reset`, `/app/invite`); `/docs` the API reference page;
`/app/assets/...` their scripts, styles and the vendored chart library, all from this process (no CDN).

The pages hold no data of their own: they log in through /v1/auth and read the same API as any
client. Every HTML answer, whichever path reaches it, carries the strict Content-Security-Policy of
web/middleware.py (scripts, styles and requests from this origin only), so a hostile string in an
event (a name, a page path) can never run as script.
"""

from __future__ import annotations

from pathlib import Path

import falcon

from web.middleware import answering_head

PUBLIC = Path(__file__).resolve().parent.parent / "dashboard" / "public"


class Page:
    """One HTML page of web/dashboard/public, read once."""

    PUBLIC = True

    def __init__(self, filename: str) -> None:
        self._body = (PUBLIC / filename).read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A built-in page (the dashboard's views live in the URL's fragment, or its path for mail links)."""
        resp.data = self._body
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]


def add_page_routes(app: falcon.App) -> None:
    dashboard = answering_head(Page("index.html"))
    for path in ("/app", "/app/reset", "/app/invite"):
        app.add_route(path, dashboard)
    app.add_route("/docs", answering_head(Page("api-docs.html")))
    app.add_static_route("/app/assets", str(PUBLIC), fallback_filename=None)
