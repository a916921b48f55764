"""On-chain verification: what the chain says of the transactions companies report (receipts,
confirmations, reorgs, ERC-20 transfers), used by the worker's verifier (workers/chain.py), the
scheduler and the analytics that count verified figures. docs/web3.md says what is verified."""
