-- The four inventory tables as the official chutes-miner (2026) leaves them: created by
-- SQLAlchemy create_all and then dbmate migrations, with its own tables beside them.
CREATE TABLE chutes (
    chute_id VARCHAR NOT NULL PRIMARY KEY, validator VARCHAR NOT NULL, name VARCHAR,
    image VARCHAR NOT NULL, code VARCHAR NOT NULL, filename VARCHAR NOT NULL,
    ref_str VARCHAR NOT NULL, version VARCHAR NOT NULL, supported_gpus VARCHAR[] NOT NULL,
    gpu_count INTEGER NOT NULL, created_at TIMESTAMP WITH TIME ZONE DEFAULT now(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now(), ban_reason VARCHAR,
    chutes_version VARCHAR, preemptible BOOLEAN NOT NULL DEFAULT TRUE, tee BOOLEAN DEFAULT FALSE
);
CREATE TABLE servers (
    server_id VARCHAR NOT NULL PRIMARY KEY, validator VARCHAR NOT NULL,
    name VARCHAR NOT NULL UNIQUE, ip_address VARCHAR, agent_api VARCHAR,
    verification_port INTEGER, status VARCHAR, created_at TIMESTAMP WITH TIME ZONE DEFAULT now(),
    labels JSONB NOT NULL, seed BIGINT, gpu_count INTEGER NOT NULL,
    cpu_per_gpu INTEGER NOT NULL DEFAULT 1, memory_per_gpu INTEGER NOT NULL DEFAULT 1,
    hourly_cost DOUBLE PRECISION NOT NULL, locked BOOLEAN DEFAULT FALSE, kubeconfig TEXT,
    is_tee BOOLEAN DEFAULT FALSE
);
CREATE TABLE deployments (
    deployment_id VARCHAR NOT NULL PRIMARY KEY, instance_id VARCHAR, validator VARCHAR NOT NULL,
    host VARCHAR, port INTEGER,
    chute_id VARCHAR NOT NULL REFERENCES chutes (chute_id) ON DELETE CASCADE,
    server_id VARCHAR NOT NULL REFERENCES servers (server_id) ON DELETE CASCADE,
    version VARCHAR NOT NULL, active BOOLEAN DEFAULT FALSE,
    verified_at TIMESTAMP WITH TIME ZONE, stub BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now(), job_id VARCHAR, config_id VARCHAR,
    activated_at TIMESTAMP WITH TIME ZONE, preemptible BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE gpus (
    gpu_id VARCHAR NOT NULL PRIMARY KEY, validator VARCHAR,
    server_id VARCHAR NOT NULL REFERENCES servers (server_id) ON DELETE CASCADE,
    deployment_id VARCHAR REFERENCES deployments (deployment_id) ON DELETE SET NULL,
    device_info JSONB NOT NULL, model_short_ref VARCHAR NOT NULL, verified BOOLEAN DEFAULT FALSE
);
CREATE TABLE schema_migrations (version VARCHAR(128) PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20251112190107');

INSERT INTO chutes VALUES
  ('c-1', '5Val', 'llama', 'chutes/llama:1', 'print(1)', 'chute_file.py', 'chute_file:chute',
   'v1', '{h100,h200}', 2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', NULL, '0.3.50',
   TRUE, FALSE);
INSERT INTO servers VALUES
  ('s-1', '5Val', 'gpu-01', '10.0.0.1', 'http://10.0.0.1:32000', NULL, 'Ready',
   '2026-01-01T00:00:00Z', '{"gpu-short-ref": "h100"}', NULL, 8, 4, 64, 2.5, FALSE, NULL, FALSE);
INSERT INTO deployments VALUES
  ('d-1', 'i-1', '5Val', '10.0.0.1', 31000, 'c-1', 's-1', 'v1', TRUE, '2026-01-01T01:00:00Z',
   FALSE, '2026-01-01T00:30:00Z', NULL, 'cfg-1', '2026-01-01T01:05:00Z', TRUE);
INSERT INTO gpus VALUES
  ('g-1', '5Val', 's-1', 'd-1', '{"name": "H100"}', 'h100', TRUE),
  ('g-2', '5Val', 's-1', 'd-1', '{"name": "H100"}', 'h100', TRUE),
  ('g-3', '5Val', 's-1', NULL, '{"name": "H100"}', 'h100', TRUE);
