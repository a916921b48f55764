-- When each identity (user id, else anonymous id) was first seen, per company: the rollups count an
-- hour's new users by looking up its active identities here instead of scanning the company's history.
-- Filled from every insert into `events` by the view below; bots are left out, as in every metric.
CREATE TABLE IF NOT EXISTS identity_first_seen (
    company_id UUID,
    identity String,
    first_seen AggregateFunction(min, DateTime)
) ENGINE = AggregatingMergeTree()
ORDER BY (company_id, identity);

CREATE MATERIALIZED VIEW IF NOT EXISTS identity_first_seen_mv TO identity_first_seen AS
SELECT company_id, if(user_id != '', user_id, anonymous_id) AS identity, minState(event_time) AS first_seen
FROM events
WHERE is_bot = 0 AND (user_id != '' OR anonymous_id != '')
GROUP BY company_id, identity;

-- Events stored before this migration (repeating it is harmless: the minimum stays the minimum).
INSERT INTO identity_first_seen
SELECT company_id, if(user_id != '', user_id, anonymous_id) AS identity, minState(event_time) AS first_seen
FROM events
WHERE is_bot = 0 AND (user_id != '' OR anonymous_id != '')
GROUP BY company_id, identity;
