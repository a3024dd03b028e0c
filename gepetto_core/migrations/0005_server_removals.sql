-- Servers the validator deleted whose deployments could not all be removed yet (the cluster's
-- delete preflight deferred one). The server row is kept, and locked, until reconcile has
-- removed them; the request goes with the row (gepetto_core/services/event_handlers.py).
CREATE TABLE gepetto_server_removals (
    server_id     VARCHAR PRIMARY KEY REFERENCES servers (server_id) ON DELETE CASCADE,
    reason        VARCHAR NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
