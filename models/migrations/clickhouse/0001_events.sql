-- Raw events: one row per accepted event, partitioned by month, ordered by company and time.
-- Only types that ClickHouse 18.16 and current releases both accept.
CREATE TABLE IF NOT EXISTS events (
    company_id UUID,
    message_id String,
    type String,
    name String,
    event_time DateTime,
    received_at DateTime,
    sent_at Nullable(DateTime),
    time_clamped UInt8,
    user_id String,
    anonymous_id String,
    session_id String,
    group_id String,
    previous_id String,
    properties String,
    traits String,
    context String,
    page_url String,
    page_path String,
    page_title String,
    referrer String,
    referrer_domain String,
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_term String,
    utm_content String,
    click_id_type String,
    click_id String,
    user_agent String,
    browser String,
    browser_version String,
    os String,
    os_version String,
    device String,
    locale String,
    ip String,
    country String,
    region String,
    city String,
    is_bot UInt8,
    wallet_address String,
    chain_id String,
    tx_hash String,
    tx_from String,
    tx_to String,
    contract_address String,
    tx_value String,
    tx_value_num Float64,
    token String,
    status String,
    payment_id String,
    amount Decimal(38, 9),
    currency String,
    payment_method String,
    request_id String,
    stream_entry String
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (company_id, event_time, message_id);

-- Every message id stored, by company, with the stream entry that brought it: the persist workers
-- look here before inserting, so an event resent (or redelivered after a crash) is stored once, and
-- a redelivered entry can tell its own earlier insert from another entry's. Filled by the view below
-- in the same INSERT.
-- Weekly partitions, dropped after DEDUP_RETENTION_DAYS. Fine index granules, since lookups are by
-- sets of ids scattered over the key range.
CREATE TABLE IF NOT EXISTS event_ids (
    company_id UUID,
    message_id String,
    received_at DateTime,
    stream_entry String
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toMonday(received_at)
ORDER BY (company_id, message_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO event_ids AS
SELECT company_id, message_id, received_at, stream_entry FROM events
