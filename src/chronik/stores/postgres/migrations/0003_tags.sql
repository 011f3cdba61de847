-- chronik PostgreSQL schema, migration 0003: events carry tags (Dynamic Consistency
-- Boundaries, docs/dcb.md).
--
-- `tags` is the event's sorted tags, NULL when it has none (adding a column with no
-- default rewrites nothing). A query item asks for events that have all of its tags
-- (`tags @> item_tags`), which the GIN index answers; events written before this
-- migration have no tags.
ALTER TABLE events ADD COLUMN tags text[];

CREATE INDEX events_tags_idx ON events USING gin (tags);

-- Query items by type alone, in position order.
CREATE INDEX events_type_position_idx ON events (type, position);
