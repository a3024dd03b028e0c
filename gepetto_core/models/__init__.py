"""Pydantic models, one module per area: inventory (the miner's database rows), validator
(the validator API's wire objects), cluster (what gepetto reads from Kubernetes), events."""
