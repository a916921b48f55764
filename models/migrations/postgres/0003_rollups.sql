-- Precomputed metrics for dashboards, per company, per UTC hour and UTC day, recomputed over a
-- trailing window by the rollup worker; and each company's retention.
ALTER TABLE companies ADD COLUMN retention_months integer NOT NULL DEFAULT 13
    CHECK (retention_months BETWEEN 1 AND 120);

-- Counts and sums: metric (events, page_views, sessions, ...), an optional dimension (type, page_path,
-- country, ...) and its value; amount is exact (numeric) for revenue and volume.
CREATE TABLE rollup_counts (
    company_id uuid NOT NULL,
    grain text NOT NULL CHECK (grain IN ('hour', 'day')),
    metric text NOT NULL,
    dimension text NOT NULL DEFAULT '',
    bucket timestamp NOT NULL,
    value text NOT NULL DEFAULT '',
    amount numeric NOT NULL,
    computed_at timestamp NOT NULL,
    PRIMARY KEY (company_id, grain, metric, dimension, bucket, value)
);

-- Distinct users and wallets as HyperLogLog sketches (Apache DataSketches), merged at read time for
-- any range: unique users of a week are not the sum of its days.
CREATE TABLE rollup_sketches (
    company_id uuid NOT NULL,
    grain text NOT NULL CHECK (grain IN ('hour', 'day')),
    metric text NOT NULL,
    bucket timestamp NOT NULL,
    sketch bytea NOT NULL,
    computed_at timestamp NOT NULL,
    PRIMARY KEY (company_id, grain, metric, bucket)
);

-- Per company: every event accepted before complete_until is in the rollups computed at computed_at.
CREATE TABLE rollup_state (
    company_id uuid PRIMARY KEY,
    complete_until timestamp NOT NULL,
    computed_at timestamp NOT NULL
);
