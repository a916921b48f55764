"""Actor `send_password_reset`: mails a password-reset link to an account that exists, and does
nothing for an email that has none. The web enqueues it for every reset request, known email or not,
so the request itself costs the same either way (accounts/sessions.py)."""

from __future__ import annotations

from accounts.sessions import Accounts
from adtivity.jobs import SEND_PASSWORD_RESET
from models.db import database
from workers.actor import actor
from workers.runtime import current


@actor(SEND_PASSWORD_RESET, max_retries=5)
def send_password_reset(email: str, ip: str) -> None:
    with database.connection_context():
        Accounts(current().settings).send_password_reset(email, ip=ip)
