-- The chutes-miner inventory, as the official miner defines it in 2026.
-- Created only when absent: on a database the official miner already set up, every statement
-- below is a no-op (CREATE ... IF NOT EXISTS / ADD COLUMN IF NOT EXISTS), so its tables and rows
-- are left exactly as they are. On an older (2025) miner database the newer columns are added
-- with the same defaults the official migrations use.

CREATE TABLE IF NOT EXISTS chutes (
    chute_id        VARCHAR PRIMARY KEY,
    validator       VARCHAR NOT NULL,
    name            VARCHAR,
    image           VARCHAR NOT NULL,
    code            VARCHAR NOT NULL,
    filename        VARCHAR NOT NULL,
    ref_str         VARCHAR NOT NULL,
    version         VARCHAR NOT NULL,
    supported_gpus  VARCHAR[] NOT NULL,
    gpu_count       INTEGER NOT NULL,
    created_at      TIMESTAMPTZ DEFAULT now(),
    updated_at      TIMESTAMPTZ DEFAULT now()
);
ALTER TABLE chutes ADD COLUMN IF NOT EXISTS ban_reason VARCHAR;
ALTER TABLE chutes ADD COLUMN IF NOT EXISTS chutes_version VARCHAR;
ALTER TABLE chutes ADD COLUMN IF NOT EXISTS preemptible BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE chutes ADD COLUMN IF NOT EXISTS tee BOOLEAN DEFAULT FALSE;

CREATE TABLE IF NOT EXISTS servers (
    server_id          VARCHAR PRIMARY KEY,
    validator          VARCHAR NOT NULL,
    name               VARCHAR NOT NULL UNIQUE,
    ip_address         VARCHAR,
    verification_port  INTEGER,
    status             VARCHAR,
    created_at         TIMESTAMPTZ DEFAULT now(),
    labels             JSONB NOT NULL,
    seed               BIGINT,
    gpu_count          INTEGER NOT NULL,
    cpu_per_gpu        INTEGER NOT NULL DEFAULT 1,
    memory_per_gpu     INTEGER NOT NULL DEFAULT 1,
    hourly_cost        DOUBLE PRECISION NOT NULL
);
ALTER TABLE servers ADD COLUMN IF NOT EXISTS locked BOOLEAN DEFAULT FALSE;
ALTER TABLE servers ADD COLUMN IF NOT EXISTS agent_api VARCHAR;
ALTER TABLE servers ADD COLUMN IF NOT EXISTS kubeconfig TEXT;
ALTER TABLE servers ADD COLUMN IF NOT EXISTS is_tee BOOLEAN DEFAULT FALSE;

CREATE TABLE IF NOT EXISTS deployments (
    deployment_id  VARCHAR PRIMARY KEY,
    instance_id    VARCHAR,
    validator      VARCHAR NOT NULL,
    host           VARCHAR,
    port           INTEGER,
    chute_id       VARCHAR NOT NULL REFERENCES chutes (chute_id) ON DELETE CASCADE,
    server_id      VARCHAR NOT NULL REFERENCES servers (server_id) ON DELETE CASCADE,
    version        VARCHAR NOT NULL,
    active         BOOLEAN DEFAULT FALSE,
    verified_at    TIMESTAMPTZ,
    stub           BOOLEAN DEFAULT FALSE,
    created_at     TIMESTAMPTZ DEFAULT now()
);
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS job_id VARCHAR;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS config_id VARCHAR;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS activated_at TIMESTAMPTZ;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS preemptible BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE IF NOT EXISTS gpus (
    gpu_id           VARCHAR PRIMARY KEY,
    validator        VARCHAR,
    server_id        VARCHAR NOT NULL REFERENCES servers (server_id) ON DELETE CASCADE,
    deployment_id    VARCHAR REFERENCES deployments (deployment_id) ON DELETE SET NULL,
    device_info      JSONB NOT NULL,
    model_short_ref  VARCHAR NOT NULL,
    verified         BOOLEAN DEFAULT FALSE
);
