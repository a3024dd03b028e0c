-- When the deployment became active, copied into the ledger when it ends: the planner's
-- start-up estimate per chute (creation -> activation) then outlives the last instance.
ALTER TABLE gepetto_deployment_ledger ADD COLUMN activated_at TIMESTAMPTZ;
