-- Entities the persist workers keep from events, the quarantine, and the record of persisted
-- stream entries that makes entity updates idempotent.
CREATE TABLE end_users (
    company_id uuid NOT NULL,
    user_id text NOT NULL,
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    traits jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (company_id, user_id)
);

-- kind: anonymous (an anonymous id), alias (a previous id), wallet (an address).
CREATE TABLE identities (
    company_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('anonymous', 'alias', 'wallet')),
    value text NOT NULL,
    user_id text NOT NULL,
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    PRIMARY KEY (company_id, kind, value)
);
CREATE INDEX identities_user ON identities (company_id, user_id);

CREATE TABLE wallets (
    company_id uuid NOT NULL,
    address text NOT NULL,
    chains text[] NOT NULL DEFAULT '{}',
    user_id text NOT NULL DEFAULT '',
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    PRIMARY KEY (company_id, address)
);

CREATE TABLE sessions (
    company_id uuid NOT NULL,
    session_id text NOT NULL,
    identity text NOT NULL,
    started_at timestamp NOT NULL,
    ended_at timestamp NOT NULL,
    events integer NOT NULL,
    page_views integer NOT NULL,
    entry_page text NOT NULL DEFAULT '',
    exit_page text NOT NULL DEFAULT '',
    PRIMARY KEY (company_id, session_id)
);
CREATE INDEX sessions_started ON sessions (company_id, started_at);

CREATE TABLE payment_sessions (
    company_id uuid NOT NULL,
    payment_id text NOT NULL,
    status text NOT NULL,
    amount numeric(38, 9),
    currency text NOT NULL DEFAULT '',
    method text NOT NULL DEFAULT '',
    user_id text NOT NULL DEFAULT '',
    history jsonb NOT NULL DEFAULT '[]',
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    PRIMARY KEY (company_id, payment_id)
);

CREATE TABLE quarantine (
    id bigserial PRIMARY KEY,
    company_id uuid,
    stream text NOT NULL,
    entry_id text NOT NULL,
    events integer NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    created_at timestamp NOT NULL,
    replayed_at timestamp
);
CREATE INDEX quarantine_company ON quarantine (company_id, created_at);

CREATE TABLE persisted_entries (
    stream text NOT NULL,
    entry_id text NOT NULL,
    persisted_at timestamp NOT NULL,
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX persisted_entries_age ON persisted_entries (persisted_at);
