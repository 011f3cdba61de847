-- chronik PostgreSQL schema, migration 0006: subjects' keys (crypto-shredding,
-- docs/lifecycle.md).
--
-- Runs with search_path set to the store's own schema, like 0001. One row per data
-- subject: the key that seals its personal data, and the key's id, which is stored
-- with each sealed field (a subject forgotten and written about again gets a new key
-- and id). Forgetting a subject deletes its row.
CREATE TABLE subject_keys (
    subject    text        COLLATE "C" PRIMARY KEY,
    key_id     text        NOT NULL,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp()
);
