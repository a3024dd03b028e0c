-- gepetto's own state: everything that must survive a restart. All names carry gepetto_.

-- One row per deployment gepetto saw start; `ended_at` and `end_reason` are filled when it ends.
-- A deployment that ends within the failure window of its creation is a failed deploy.
CREATE TABLE gepetto_deployment_ledger (
    deployment_id  VARCHAR PRIMARY KEY,
    chute_id       VARCHAR NOT NULL,
    server_id      VARCHAR NOT NULL,
    gpu_type       VARCHAR NOT NULL,
    validator      VARCHAR NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ,
    end_reason     VARCHAR,
    -- A planned removal (operator undeploy, preemption, 423 rollback) is never a failure.
    counts_as_failure BOOLEAN NOT NULL DEFAULT TRUE,
    forgiven_at    TIMESTAMPTZ,
    forgiven_by    VARCHAR
);
CREATE INDEX gepetto_deployment_ledger_chute ON gepetto_deployment_ledger (chute_id, ended_at);
CREATE INDEX gepetto_deployment_ledger_server ON gepetto_deployment_ledger (server_id, ended_at);

-- Every attempted mutation, allowed or denied, from Slack, the CLI or the autoscaler.
CREATE TABLE gepetto_audit (
    audit_id    BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    verb        VARCHAR NOT NULL,
    arguments   JSONB NOT NULL DEFAULT '{}'::jsonb,
    allowed     BOOLEAN NOT NULL,
    approvals   JSONB NOT NULL DEFAULT '[]'::jsonb,
    result      VARCHAR,
    message_link VARCHAR
);
CREATE INDEX gepetto_audit_actor_at ON gepetto_audit (actor, at);
CREATE INDEX gepetto_audit_at ON gepetto_audit (at);

-- Actions waiting for a click (confirm) or a second person (approval). Slack buttons carry only
-- the opaque action_id; everything else stays here.
CREATE TABLE gepetto_pending_actions (
    action_id     VARCHAR PRIMARY KEY,
    verb          VARCHAR NOT NULL,
    arguments     JSONB NOT NULL,
    plan          JSONB,
    requested_by  VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    policy        VARCHAR NOT NULL,
    status        VARCHAR NOT NULL DEFAULT 'pending',
    approvals     JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    decided_at    TIMESTAMPTZ,
    result        JSONB,
    message_ref   JSONB,
    CONSTRAINT gepetto_pending_actions_status CHECK
        (status IN ('pending', 'approved', 'executing', 'done', 'failed', 'expired', 'cancelled'))
);

-- The autoscaler's mode, one row.
CREATE TABLE gepetto_autoscaler_mode (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    mode          VARCHAR NOT NULL DEFAULT 'active' CHECK (mode IN ('active', 'shadow', 'paused')),
    paused_until  TIMESTAMPTZ,
    updated_by    VARCHAR NOT NULL DEFAULT 'gepetto',
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO gepetto_autoscaler_mode (singleton) VALUES (TRUE);

-- Alerts already posted, by dedupe key, so a repeat edits the message instead of posting anew.
CREATE TABLE gepetto_alerts (
    alert_key    VARCHAR PRIMARY KEY,
    channel      VARCHAR,
    message_ts   VARCHAR,
    thread_ts    VARCHAR,
    state        VARCHAR NOT NULL DEFAULT 'open',
    occurrences  INTEGER NOT NULL DEFAULT 1,
    first_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload      JSONB NOT NULL DEFAULT '{}'::jsonb
);
