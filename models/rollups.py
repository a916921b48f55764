"""Rollup tables (see migrations/postgres/0003_rollups.sql): precomputed metrics per company, per UTC
hour and UTC day, written by rollups/compute.py and read by the analytics API."""

from __future__ import annotations

import peewee

from models.db import BaseModel

HOUR, DAY = "hour", "day"
USERS, WALLETS = "users", "wallets"
OTHER = "(other)"


class RollupCount(BaseModel):
    company_id = peewee.UUIDField()
    grain = peewee.TextField()
    metric = peewee.TextField()
    dimension = peewee.TextField(default="")
    bucket = peewee.DateTimeField()
    value = peewee.TextField(default="")
    amount = peewee.DecimalField(auto_round=False)
    computed_at = peewee.DateTimeField()

    class Meta:
        table_name = "rollup_counts"
        primary_key = peewee.CompositeKey("company_id", "grain", "metric", "dimension", "bucket", "value")


class RollupSketch(BaseModel):
    company_id = peewee.UUIDField()
    grain = peewee.TextField()
    metric = peewee.TextField()
    bucket = peewee.DateTimeField()
    sketch = peewee.BlobField()
    computed_at = peewee.DateTimeField()

    class Meta:
        table_name = "rollup_sketches"
        primary_key = peewee.CompositeKey("company_id", "grain", "metric", "bucket")


class RollupState(BaseModel):
    company_id = peewee.UUIDField(primary_key=True)
    complete_until = peewee.DateTimeField()
    computed_at = peewee.DateTimeField()

    class Meta:
        table_name = "rollup_state"


ROLLUP_MODELS = (RollupCount, RollupSketch, RollupState)
