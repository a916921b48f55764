-- The event fields people filter and break down by, whose values repeat (a few to some thousands a
-- company): stored as LowCardinality, a dictionary of the values and a small number a row. Filters
-- on them read and compare a fraction of the bytes (docs/performance-notes.md). Rewrites these
-- columns of every part once. ClickHouse 18.16 makes LowCardinality columns only with
-- allow_experimental_low_cardinality_type, which the migration runner sets where the server has it
-- (models/migrate.py ddl_settings), and changes at most 75 files of a part in one ALTER
-- (max_files_to_modify_in_alter_columns; a LowCardinality column has four): five columns a statement.
ALTER TABLE events MODIFY COLUMN type LowCardinality(String), MODIFY COLUMN name LowCardinality(String), MODIFY COLUMN referrer_domain LowCardinality(String), MODIFY COLUMN utm_source LowCardinality(String), MODIFY COLUMN utm_medium LowCardinality(String);
ALTER TABLE events MODIFY COLUMN utm_campaign LowCardinality(String), MODIFY COLUMN click_id_type LowCardinality(String), MODIFY COLUMN browser LowCardinality(String), MODIFY COLUMN os LowCardinality(String), MODIFY COLUMN device LowCardinality(String);
ALTER TABLE events MODIFY COLUMN locale LowCardinality(String), MODIFY COLUMN country LowCardinality(String), MODIFY COLUMN region LowCardinality(String), MODIFY COLUMN city LowCardinality(String), MODIFY COLUMN chain_id LowCardinality(String);
ALTER TABLE events MODIFY COLUMN token LowCardinality(String), MODIFY COLUMN status LowCardinality(String), MODIFY COLUMN currency LowCardinality(String), MODIFY COLUMN payment_method LowCardinality(String);
