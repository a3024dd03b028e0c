"""The miner's inventory as stored in PostgreSQL (tables `chutes`, `servers`, `gpus`,
`deployments`; columns as the official chutes-miner defines them in 2026)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Chute(_Row):
    chute_id: str
    validator: str
    name: str | None = None
    image: str
    code: str
    filename: str
    ref_str: str
    version: str
    supported_gpus: list[str] = Field(default_factory=list)
    gpu_count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ban_reason: str | None = None
    chutes_version: str | None = None
    preemptible: bool = True
    tee: bool = False


class Gpu(_Row):
    gpu_id: str
    validator: str | None = None
    server_id: str
    deployment_id: str | None = None
    device_info: dict[str, Any] = Field(default_factory=dict)
    model_short_ref: str
    verified: bool = False


class Server(_Row):
    server_id: str
    validator: str
    name: str
    ip_address: str | None = None
    agent_api: str | None = None
    verification_port: int | None = None
    status: str | None = None
    created_at: datetime | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    gpu_count: int
    cpu_per_gpu: int = 1
    memory_per_gpu: int = 1
    hourly_cost: float
    locked: bool = False
    kubeconfig: str | None = None
    is_tee: bool = False


class Deployment(_Row):
    deployment_id: str
    instance_id: str | None = None
    validator: str
    host: str | None = None
    port: int | None = None
    chute_id: str
    server_id: str
    version: str
    active: bool = False
    verified_at: datetime | None = None
    activated_at: datetime | None = None
    stub: bool = False
    job_id: str | None = None
    config_id: str | None = None
    created_at: datetime | None = None
    preemptible: bool = True
