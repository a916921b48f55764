-- On-chain verification (chain/): each transaction hash a company reported, what the client said of it,
-- and what the chain says. Rows come from the entities pump (one per company, chain and hash); the
-- verifier (workers/chain.py) looks the due ones up and writes the chain's answer. ClickHouse gets each
-- new version of a row (tx_verifications) for analytics; `exported_version` says which it has.
CREATE TABLE chain_transactions (
    company_id uuid NOT NULL,
    chain_id text NOT NULL,
    tx_hash text NOT NULL,
    reported_at timestamp NOT NULL,
    last_reported_at timestamp NOT NULL,
    reported_status text NOT NULL DEFAULT '',
    reported_from text NOT NULL DEFAULT '',
    reported_to text NOT NULL DEFAULT '',
    reported_value text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'confirmed', 'reverted', 'replaced', 'not_found', 'mismatch')),
    final boolean NOT NULL DEFAULT false,
    block_number bigint,
    block_hash text,
    tx_from text NOT NULL DEFAULT '',
    tx_to text NOT NULL DEFAULT '',
    value numeric(78, 0),
    nonce bigint,
    gas_used bigint,
    succeeded boolean,
    transfers jsonb NOT NULL DEFAULT '[]',
    confirmations integer NOT NULL DEFAULT 0,
    lookups integer NOT NULL DEFAULT 0,
    reorgs integer NOT NULL DEFAULT 0,
    next_check_at timestamp NOT NULL,
    checked_at timestamp,
    version bigint NOT NULL DEFAULT 1,
    exported_version bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, chain_id, tx_hash)
);
CREATE INDEX chain_transactions_due ON chain_transactions (chain_id, next_check_at) WHERE NOT final;
CREATE INDEX chain_transactions_unexported ON chain_transactions (chain_id) WHERE exported_version < version;

-- ERC-20 tokens seen in verified transfers: their decimals and symbol, asked of the chain once.
CREATE TABLE chain_tokens (
    chain_id text NOT NULL,
    address text NOT NULL,
    decimals integer NOT NULL,
    symbol text NOT NULL DEFAULT '',
    PRIMARY KEY (chain_id, address)
);
