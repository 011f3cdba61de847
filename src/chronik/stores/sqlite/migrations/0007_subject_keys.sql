-- chronik SQLite schema, migration 0007: subjects' keys (crypto-shredding, docs/lifecycle.md).
--
-- One row per data subject: the key that seals its personal data, and the key's id,
-- which is stored with each sealed field (a subject forgotten and written about again
-- gets a new key and id). Forgetting a subject deletes its row; the store does that
-- with PRAGMA secure_delete on, so the key's bytes are overwritten rather than left in
-- a free page, and truncates the write-ahead log after it.
CREATE TABLE chronik_subject_keys (
    subject    TEXT    PRIMARY KEY,
    key_id     TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    created_at INTEGER NOT NULL  -- microseconds since the Unix epoch, UTC
) WITHOUT ROWID;
