-- Raw events: one row per accepted event. Partitioned by month, ordered by company and time.
-- A resent event has the same (company_id, event_time, message_id) and is collapsed by
-- ReplacingMergeTree; queries that must count exactly use FINAL or uniqExact(message_id).
-- Only types that ClickHouse 18.16 and current releases both accept (see INFRA.md).
CREATE TABLE IF NOT EXISTS events (
    company_id UUID,
    message_id String,
    type String,
    name String,
    event_time DateTime,
    sent_at Nullable(DateTime),
    received_at DateTime,
    user_id String,
    anonymous_id String,
    session_id String,
    properties String,
    page_url String,
    page_path String,
    referrer String,
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_term String,
    utm_content String,
    user_agent String,
    browser String,
    os String,
    device String,
    locale String,
    ip String,
    country String,
    region String,
    city String,
    wallet_address String,
    chain_id String,
    tx_hash String,
    contract_address String,
    tx_value String,
    token String,
    tx_status String,
    payment_id String,
    amount String,
    currency String,
    payment_method String,
    payment_status String,
    is_bot UInt8
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (company_id, event_time, message_id)
