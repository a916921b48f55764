"""Actor `purge_company`: removes a deleted company's data from ClickHouse (events, their ids, first
sightings, transaction verifications) and Postgres (the company row and what cascades from it, its rollups,
end users, identities, wallets, sessions, payment sessions, quarantined entries, verified transactions
and privacy requests).

The web API marks the company deleted (its keys stop at once) and enqueues this. Idempotent: running
it again, or for a company already gone, does nothing more. A company not marked deleted is refused,
so a stray message cannot erase a live tenant. The audit log keeps its rows (no foreign key).
"""

from __future__ import annotations

import logging
import uuid

from adtivity.jobs import PURGE_COMPANY
from adtivity.logs import log_event
from adtivity.settings import Settings
from models.accounts import Company
from models.chain import ChainTransaction
from models.clickhouse import clickhouse_client
from models.clickhouse_cluster import Layout
from models.db import database
from models.privacy import PrivacyRequest
from models.rollups import ROLLUP_MODELS
from models.tracking import COMPANY_ENTITY_MODELS
from workers.actor import actor
from workers.runtime import current

log = logging.getLogger(__name__)
COMPANY_TABLES = (
    "events",
    "event_ids",
    "identity_first_seen",
    "tx_verifications",
)  # the ClickHouse tables holding a company's rows


def purge_company_data(settings: Settings, company_id: uuid.UUID) -> bool:
    """True when the company was purged (or was already gone); False when it is not deleted."""
    with database.connection_context():
        company = Company.get_or_none(Company.id == company_id)
        if company is not None and company.deleted_at is None:
            log_event(log, "purge refused: company is not deleted", level=logging.WARNING, company=str(company_id))
            return False
        clickhouse = clickhouse_client(settings.clickhouse_url)
        layout = Layout.from_settings(settings)
        for table in COMPANY_TABLES:
            clickhouse.command(
                f"ALTER TABLE {layout.storage(table)} DELETE WHERE company_id = %(company)s",
                parameters={"company": str(company_id)},
            )
        for model in (*ROLLUP_MODELS, *COMPANY_ENTITY_MODELS, ChainTransaction, PrivacyRequest):
            model.delete().where(model.company_id == company_id).execute()
        if company is not None:
            company.delete_instance()
    log_event(log, "company purged", company=str(company_id))
    return True


@actor(PURGE_COMPANY, max_retries=10, min_backoff=5_000, max_backoff=300_000)
def purge_company(company_id: str) -> None:
    purge_company_data(current().settings, uuid.UUID(company_id))
