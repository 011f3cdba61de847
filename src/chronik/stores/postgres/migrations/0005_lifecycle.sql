-- chronik PostgreSQL schema, migration 0005: deleted streams and stream metadata
-- (docs/lifecycle.md).
--
-- Runs with search_path set to the store's own schema, like 0001. Each stream's row
-- says how it is deleted (NULL: live) and what it keeps visible; adding columns with
-- no default rewrites nothing. A stream that has metadata before its first event has
-- a row at version 0 (with transaction id 0, so it orders no append), which
-- list_streams leaves out.
ALTER TABLE streams ADD COLUMN deleted text CHECK (deleted IN ('soft', 'hard', 'archived'));
ALTER TABLE streams ADD COLUMN max_count bigint CHECK (max_count > 0);
ALTER TABLE streams ADD COLUMN max_age bigint CHECK (max_age > 0);  -- microseconds
ALTER TABLE streams ADD COLUMN truncate_before bigint CHECK (truncate_before > 0);
