"""The data layer: Postgres models and migrations, the ClickHouse schema, the Redis key layout."""
