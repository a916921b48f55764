"""The audit log and the mail outbox: the rows every account action leaves behind."""

from __future__ import annotations

import uuid

from models.accounts import AuditLog, MailOutbox


def audit(
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    target: str = "",
    ip: str = "",
) -> None:
    AuditLog.create(action=action, actor_id=actor_id, company_id=company_id, target=target, ip=ip)


def send_mail(to_email: str, subject: str, body: str) -> None:
    """Queues a mail in the outbox; a sender (or the operator's own relay) delivers it from there."""
    MailOutbox.create(to_email=to_email, subject=subject, body=body)
