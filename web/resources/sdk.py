"""`GET /sdk/adtivity.js`: the browser snippet (web/static/adtivity.js), served by the app itself so a
site needs nothing from elsewhere; cacheable for an hour."""

from __future__ import annotations

from pathlib import Path

import falcon

SNIPPET = Path(__file__).resolve().parent.parent / "static" / "adtivity.js"


class BrowserSnippet:
    PUBLIC = True

    def __init__(self) -> None:
        self._body = SNIPPET.read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The browser snippet: batching, message ids, sent_at, sendBeacon on page hide, EIP-1193 wallets."""
        resp.data = self._body
        resp.content_type = "application/javascript; charset=utf-8"
        resp.cache_control = ["public", "max-age=3600"]
