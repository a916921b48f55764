"""Privacy requests (migrations/postgres/0004_privacy.sql): deleting or exporting one end user's data,
carried out by workers/privacy.py and followed through the API."""

from __future__ import annotations

import peewee

from models.db import BaseModel, new_id, utcnow

DELETE, EXPORT = "delete", "export"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class PrivacyRequest(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    company_id = peewee.UUIDField()
    kind = peewee.TextField()
    user_id = peewee.TextField()
    status = peewee.TextField(default=QUEUED)
    requested_by = peewee.UUIDField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    error = peewee.TextField(default="")
    events = peewee.IntegerField(null=True)
    result = peewee.BlobField(null=True)

    class Meta:
        table_name = "privacy_requests"
