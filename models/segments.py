"""The Postgres model of saved segments (models/migrations/postgres/0005_segments.sql); what a rule
means and how a segment filters a query live in queries/segments.py."""

from __future__ import annotations

import peewee
from playhouse.postgres_ext import ArrayField, BinaryJSONField

from models.accounts import Company
from models.db import BaseModel, new_id, utcnow


class Segment(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=new_id)
    company = peewee.ForeignKeyField(Company, column_name="company_id", on_delete="CASCADE")
    name = peewee.TextField()
    kind = peewee.TextField()  # rule or static
    rule = BinaryJSONField(null=True)
    user_ids = ArrayField(peewee.TextField, default=list)
    wallets = ArrayField(peewee.TextField, default=list)
    created_by = peewee.UUIDField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "segments"
