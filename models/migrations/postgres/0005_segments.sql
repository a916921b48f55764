-- Saved segments (cohorts) of a company's people: a rule evaluated in ClickHouse at query time, or a
-- static list of user ids or wallet addresses (queries/segments.py).
CREATE TABLE segments (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('rule', 'static')),
    rule jsonb,
    user_ids text[] NOT NULL DEFAULT '{}',
    wallets text[] NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamp NOT NULL,
    updated_at timestamp NOT NULL
);
CREATE INDEX segments_company ON segments (company_id, created_at);
