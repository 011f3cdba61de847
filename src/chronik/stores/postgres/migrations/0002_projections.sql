-- chronik PostgreSQL schema, migration 0002: projection state and dead letters.
--
-- Runs with search_path set to the store's own schema, like 0001. Both tables are
-- written in the same transactions as a projection's read model and checkpoint.

-- One row per version of each projection, so a new version can build beside the
-- old one (blue/green); `active` marks the version that serves queries.
CREATE TABLE projections (
    name       text        COLLATE "C" NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    status     text        NOT NULL CHECK (status IN ('building', 'live', 'failed', 'retired')),
    active     boolean     NOT NULL,
    -- The event the projection stopped on, and why (a FailedEvent as JSON).
    failure    json,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (name, version)
);

-- Events a projection parked instead of stopping. The key makes parking the same
-- event twice (a runner that crashed after parking, before its checkpoint) a no-op.
CREATE TABLE dead_letters (
    projection         text        COLLATE "C" NOT NULL,
    projection_version integer     NOT NULL,
    position           bigint      NOT NULL,
    -- With `position`, the event's checkpoint: (transaction_id, position).
    transaction_id     xid8        NOT NULL,
    stream_id          text        COLLATE "C" NOT NULL,
    version            bigint      NOT NULL,
    type               text        NOT NULL,
    event_id           uuid        NOT NULL,
    error              text        NOT NULL,
    attempts           integer     NOT NULL,
    parked_at          timestamptz NOT NULL,
    -- The order in which letters were parked, whatever the clocks of their writers.
    parked             bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (projection, projection_version, position)
);
