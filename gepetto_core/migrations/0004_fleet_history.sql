-- Fleet history: one row per recorded autoscaler round (at most one a minute), pruned after
-- GEPETTO_HISTORY_RETENTION_DAYS. The totals are columns so a week's report reads no server
-- detail; `servers` holds every server's GPU slots, run-length encoded JSON compressed with
-- zlib, NULL when unchanged since the previous row (at least one full row an hour; see
-- gepetto_core/adapters/pg_history.py).
CREATE TABLE gepetto_fleet_history (
    taken_at         TIMESTAMPTZ PRIMARY KEY,
    mode             VARCHAR NOT NULL,
    gpus             INTEGER NOT NULL,
    states           JSONB NOT NULL,
    idle             JSONB NOT NULL,
    earning_per_hour DOUBLE PRECISION NOT NULL,
    cost_per_hour    DOUBLE PRECISION NOT NULL,
    expected_value   DOUBLE PRECISION NOT NULL,
    deploys          INTEGER NOT NULL,
    failed_deploys   INTEGER NOT NULL,
    servers          BYTEA
);
