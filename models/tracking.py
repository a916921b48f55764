"""Postgres models of what events tell about a company's users: end users, identities, wallets,
sessions and payment sessions; the quarantine of events that could not be persisted; and the record
of persisted stream entries. Tables are made by models/migrations/postgres/0002_entities.sql."""

from __future__ import annotations

import peewee
from playhouse.postgres_ext import ArrayField, BinaryJSONField

from models.db import BaseModel, utcnow


class EndUser(BaseModel):
    company_id = peewee.UUIDField()
    user_id = peewee.TextField()
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()
    traits = BinaryJSONField(default=dict)

    class Meta:
        table_name = "end_users"
        primary_key = peewee.CompositeKey("company_id", "user_id")


class Identity(BaseModel):
    company_id = peewee.UUIDField()
    kind = peewee.TextField()
    value = peewee.TextField()
    user_id = peewee.TextField()
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        table_name = "identities"
        primary_key = peewee.CompositeKey("company_id", "kind", "value")


class Wallet(BaseModel):
    company_id = peewee.UUIDField()
    address = peewee.TextField()
    chains = ArrayField(peewee.TextField, default=list)
    user_id = peewee.TextField(default="")
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        table_name = "wallets"
        primary_key = peewee.CompositeKey("company_id", "address")


class Session(BaseModel):
    company_id = peewee.UUIDField()
    session_id = peewee.TextField()
    identity = peewee.TextField()
    started_at = peewee.DateTimeField()
    ended_at = peewee.DateTimeField()
    events = peewee.IntegerField()
    page_views = peewee.IntegerField()
    entry_page = peewee.TextField(default="")
    exit_page = peewee.TextField(default="")

    class Meta:
        table_name = "sessions"
        primary_key = peewee.CompositeKey("company_id", "session_id")


class PaymentSession(BaseModel):
    company_id = peewee.UUIDField()
    payment_id = peewee.TextField()
    status = peewee.TextField()
    amount = peewee.DecimalField(max_digits=38, decimal_places=9, null=True)
    currency = peewee.TextField(default="")
    method = peewee.TextField(default="")
    user_id = peewee.TextField(default="")
    history = BinaryJSONField(default=list)
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        table_name = "payment_sessions"
        primary_key = peewee.CompositeKey("company_id", "payment_id")


class Quarantine(BaseModel):
    id = peewee.BigAutoField()
    company_id = peewee.UUIDField(null=True)
    stream = peewee.TextField()
    entry_id = peewee.TextField()
    events = peewee.IntegerField()
    payload = peewee.BlobField()
    reason = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)
    replayed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "quarantine"


class PersistedEntry(BaseModel):
    stream = peewee.TextField()
    entry_id = peewee.TextField()
    persisted_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "persisted_entries"
        primary_key = peewee.CompositeKey("stream", "entry_id")


# A company's own rows (its purge deletes them); PersistedEntry records stream entries, of no company.
COMPANY_ENTITY_MODELS = (EndUser, Identity, Wallet, Session, PaymentSession, Quarantine)
TRACKING_MODELS = (*COMPANY_ENTITY_MODELS, PersistedEntry)
