"""SDK ingest: wire formats, validation, enrichment, and the write to the Redis streams."""
