"""Error tracking with Sentry (SENTRY_DSN; unset, nothing is sent): every process's unhandled errors,
through sentry-sdk's own integrations: Falcon's in the web, Dramatiq's in the worker, and its logging
integration everywhere (an ERROR line becomes an event, lower lines its breadcrumbs).

What leaves the machine is scrubbed first (`scrub`): no request bodies (event payloads), cookies or
local variables are collected; headers are cut to an allow-list; any field whose name suggests a
secret (adtivity.logs.is_secret_field) is redacted at any depth; API keys and bearer tokens
(JWTs, refresh and reset tokens) are cut out of every string. Each event carries the process, the
environment, the release and, in the web, the request id.
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.dramatiq import DramatiqIntegration
from sentry_sdk.integrations.falcon import FalconIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from adtivity.logs import is_secret_field
from adtivity.settings import Settings

REDACTED = "[redacted]"
SAFE_HEADERS = {"user-agent", "content-type", "content-length", "x-request-id", "accept", "host"}
# API keys (adt_w_/adt_r_ and their secret), JWTs, and the long random tokens of refresh, reset and
# invite links.
SECRET_TEXT = re.compile(
    r"adt_[wr]_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|[A-Za-z0-9_-]{40,}"
)
INTEGRATIONS = {"web": [FalconIntegration()], "worker": [DramatiqIntegration()]}


def init_error_tracking(settings: Settings, *, process: str) -> bool:
    """Starts sending this process's errors to Sentry when SENTRY_DSN is set; says whether it does."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(  # sends no personal data by default (IP addresses, users, cookies)
        dsn=settings.sentry_dsn,
        environment=settings.adtivity_env,
        release=settings.sentry_release or None,
        integrations=[*INTEGRATIONS.get(process, []), LoggingIntegration()],
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0,
    )
    sentry_sdk.set_tag("process", process)
    return True


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        request.pop("query_string", None)
        headers = request.get("headers") or {}
        request["headers"] = {name: value for name, value in headers.items() if name.lower() in SAFE_HEADERS}
    return scrub(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return scrub(crumb)


def scrub(value: Any) -> Any:
    """`value` with secret-named fields redacted and secret-looking text cut out, at any depth."""
    if isinstance(value, dict):
        return {name: REDACTED if is_secret_field(name) else scrub(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return SECRET_TEXT.sub(REDACTED, value)
    return value
