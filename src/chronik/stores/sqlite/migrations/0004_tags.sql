-- chronik SQLite schema, version 4: events carry tags (Dynamic Consistency Boundaries).
--
-- `tags` keeps an event's tags as a sorted JSON array (NULL when it has none), so any
-- read of events returns them without a join. chronik_event_tags indexes them: one
-- row per (tag, event), walked in position order from the first tag of a query item,
-- the other tags checked by primary key. Events written before this migration have
-- no tags.
ALTER TABLE chronik_events ADD COLUMN tags TEXT;

CREATE TABLE chronik_event_tags (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;

-- Query items by type alone, in position order.
CREATE INDEX chronik_events_type_position ON chronik_events (type, position);
