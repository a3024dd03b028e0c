-- Chutes the validator deleted whose deployments could not all be removed yet (the cluster's
-- delete preflight deferred one). The chute row is kept, and the planner leaves the chute
-- alone, until reconcile has removed them; the request goes with the row
-- (gepetto_core/services/event_handlers.py).
CREATE TABLE gepetto_chute_removals (
    chute_id      VARCHAR PRIMARY KEY REFERENCES chutes (chute_id) ON DELETE CASCADE,
    reason        VARCHAR NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
