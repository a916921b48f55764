-- Requests to delete or export one end user's data, run as background jobs; an export's NDJSON is
-- kept here (gzip) until the company is purged or the request is older than HOUSEKEEPING_KEEP_DAYS.
CREATE TABLE privacy_requests (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('delete', 'export')),
    user_id text NOT NULL,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    requested_by uuid,
    created_at timestamp NOT NULL,
    finished_at timestamp,
    error text NOT NULL DEFAULT '',
    events integer,
    result bytea
);
CREATE INDEX privacy_requests_company ON privacy_requests (company_id, created_at);
