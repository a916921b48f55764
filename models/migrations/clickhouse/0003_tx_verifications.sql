-- What the chain says of each reported transaction (chain/verify.py), one row per version of its
-- Postgres record (chain_transactions): read the newest per hash (argMax by version). The raw events
-- are never rewritten. `value_num` is the native value in whole coins (wei / 1e18); transfers are the
-- ERC-20 Transfer logs, by token address, in whole tokens (the token's decimals applied).
CREATE TABLE IF NOT EXISTS tx_verifications (
    company_id UUID,
    chain_id String,
    tx_hash String,
    reported_at DateTime,
    reported_status String,
    reported_value_num Float64,
    state String,
    final UInt8,
    disagrees UInt8,
    block_number UInt64,
    tx_from String,
    tx_to String,
    value_num Float64,
    gas_used UInt64,
    transfer_tokens Array(String),
    transfer_amounts Array(Float64),
    verified_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (company_id, chain_id, tx_hash)
