-- Each event's person (user id, else anonymous id) as a 64-bit hash, 0 for none: counting distinct
-- people reads these 8 bytes a row instead of two strings (docs/performance-notes.md). The same hash
-- as cityHash64 of the identity. ClickHouse computes it: inserts name their columns and leave this
-- one out (models/events_table.EVENT_COLUMNS), and parts written before this migration compute it
-- when they are read, until a merge stores it. A DEFAULT, not MATERIALIZED: on 18.16 a MATERIALIZED
-- column cannot pass through a Distributed table.
ALTER TABLE events ADD COLUMN person UInt64 DEFAULT if(user_id != '', cityHash64(user_id), if(anonymous_id != '', cityHash64(anonymous_id), 0))
