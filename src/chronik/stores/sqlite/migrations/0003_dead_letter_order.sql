-- chronik SQLite schema, version 3: dead letters keep the order they were parked in.
--
-- `parked_at` is when, not in which order: two letters parked in the same
-- microsecond, or given their time by the caller, tied or came out of order.
-- `parked_seq` counts parkings; every park runs under the store's write lock
-- (BEGIN IMMEDIATE), so max + 1 is never taken twice. Letters parked before this
-- migration are numbered in the order they were listed until now.
ALTER TABLE chronik_dead_letters ADD COLUMN parked_seq INTEGER NOT NULL DEFAULT 0;

UPDATE chronik_dead_letters SET parked_seq = (
    SELECT count(*) FROM chronik_dead_letters AS earlier
    WHERE (earlier.parked_at, earlier.projection, earlier.projection_version, earlier.position)
       <= (chronik_dead_letters.parked_at, chronik_dead_letters.projection,
           chronik_dead_letters.projection_version, chronik_dead_letters.position)
);

-- Listing in parking order, and the next number, read this index instead of the table.
CREATE INDEX chronik_dead_letters_by_parked_seq ON chronik_dead_letters (parked_seq);
