-- chronik PostgreSQL schema, migration 0004: the heartbeats of running runners.
--
-- Runs with search_path set to the store's own schema, like 0001. One row per runner
-- (a projection's, a process manager's, a consumer-group member's), replaced by each
-- heartbeat, so `chronik projections status` and the web UI in other processes see
-- what it is doing (retrying, caught up, stopped and why) and how long ago it said
-- so. Written outside the runner's transactions. `record` is the whole
-- RunnerHeartbeat as JSON; the other columns are what readers select by.
CREATE TABLE runners (
    runner_id text        COLLATE "C" PRIMARY KEY,
    name      text        COLLATE "C" NOT NULL,
    version   integer     NOT NULL CHECK (version > 0),
    -- When the runner last wrote, by its own clock.
    heard_at  timestamptz NOT NULL,
    record    json        NOT NULL
);
