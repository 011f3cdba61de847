-- chronik SQLite schema, version 5: the heartbeats of running runners.
--
-- One row per runner (a projection's, a process manager's, a consumer-group
-- member's), replaced by each heartbeat, so `chronik projections status` and the web
-- UI in other processes see what it is doing (retrying, caught up, stopped and why)
-- and how long ago it said so. `record` is the whole RunnerHeartbeat as JSON; the
-- other columns are what readers select and order by.
CREATE TABLE chronik_runners (
    runner_id TEXT    NOT NULL PRIMARY KEY,
    name      TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    heard_at  INTEGER NOT NULL,  -- microseconds since the Unix epoch, UTC (the runner's clock)
    record    TEXT    NOT NULL
) WITHOUT ROWID;
