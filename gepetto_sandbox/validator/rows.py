"""The sandbox validator's rows, in the shapes its API returns: a GPU node, a server with its
GPUs, an instance. Pure: ids and times are passed in, so `world.ValidatorWorld` keeps the
order in which its seeded generator hands them out."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from gepetto_sandbox.validator.gpus import GPU_TYPES, GpuType


class GpuPlace(NamedTuple):
    """Where a GPU sits: its server, its index there, the miner and the verification host."""

    server_id: str
    device_index: int
    hotkey: str
    host: str


def node_row(
    gpu_uuid: str,
    gpu: GpuType,
    gpu_identifier: str,
    where: GpuPlace,
    created: str,
    *,
    verified: bool,
) -> dict[str, Any]:
    """A GPU as `POST /nodes/` records it (verified at once when `verified`)."""
    return {
        "uuid": gpu_uuid,
        "name": gpu.model_name,
        "memory": gpu.memory_gb * 1024**3,
        "gpu_identifier": gpu_identifier,
        "device_index": where.device_index,
        "server_id": where.server_id,
        "miner_hotkey": where.hotkey,
        "verification_host": where.host,
        "verification_port": 30443,
        "verified_at": created if verified else None,
        "verification_error": None,
        "created_at": created,
    }


def server_gpu_row(node: dict[str, Any]) -> dict[str, Any]:
    """The GPU as its server's listing shows it."""
    return {
        "uuid": node["uuid"],
        "gpu_identifier": node["gpu_identifier"],
        "device_index": node["device_index"],
        "verified_at": node["verified_at"],
        "verification_error": None,
    }


def server_row(
    server_id: str,
    name: str,
    host: str,
    hotkey: str,
    gpus: list[dict[str, Any]],
    created: str,
    *,
    is_tee: bool,
) -> dict[str, Any]:
    return {
        "server_id": server_id,
        "name": name,
        "ip": host,
        "is_tee": is_tee,
        "version": "0.1.0" if is_tee else None,
        "maintenance_pending": False,
        "created_at": created,
        "updated_at": created,
        "gpus": gpus,
        "miner_hotkey": hotkey,
    }


def instance_row(
    chute: dict[str, Any], hotkey: str, *, host: str, port: int, instance_id: str, now: str
) -> dict[str, Any]:
    """A new (inactive, unverified) instance of `chute`; its rate is the cheapest supported GPU's
    times the GPU count."""
    chute_id = chute["chute_id"]
    gpu_count = chute["node_selector"]["gpu_count"]
    cheapest = min(
        (GPU_TYPES[g].hourly_rate for g in chute["node_selector"]["supported_gpus"]),
        default=0.0,
    )
    return {
        "instance_id": instance_id,
        "host": host,
        "port": port,
        "chute_id": chute_id,
        "version": chute["version"],
        "miner_uid": int(hashlib.sha256(hotkey.encode()).hexdigest(), 16) % 256,
        "miner_hotkey": hotkey,
        "miner_coldkey": hotkey,
        "region": "n/a",
        "active": False,
        "verified": False,
        "last_queried_at": None,
        "created_at": now,
        "updated_at": now,
        "activated_at": None,
        "last_verified_at": None,
        "stop_billing_at": None,
        "billed_to": None,
        "verification_error": None,
        "consecutive_failures": 0,
        "chutes_version": chute.get("chutes_version"),
        "symmetric_key": secrets.token_hex(16),
        "config_id": None,
        "cacert": None,
        "port_mappings": [],
        "hourly_rate": gpu_count * cheapest,
        "compute_multiplier": float(chute["node_selector"]["compute_multiplier"]),
    }


def launch_config_row(
    config_id: str, chute_id: str, job_id: str | None, hotkey: str, *, seed: int, now: datetime
) -> dict[str, Any]:
    """A launch config as issued (not yet retrieved by a pod)."""
    return {
        "config_id": config_id,
        "chute_id": chute_id,
        "job_id": job_id,
        "miner_hotkey": hotkey,
        "env_key": secrets.token_hex(16),
        "seed": seed,
        "created_at": now,
        "retrieved_at": None,
        "instance_id": None,
        "failed_at": None,
    }


def launch_claims(config: dict[str, Any], base_url: str, lifetime: timedelta) -> dict[str, Any]:
    """The JWT claims of a launch config's token (the pod's credentials for its config)."""
    now: datetime = config["created_at"]
    config_id = config["config_id"]
    return {
        "exp": int((now + lifetime).timestamp()),
        "iat": int(now.timestamp()),
        "sub": config_id,
        "iss": "chutes",
        "url": f"{base_url}/instances/launch_config/{config_id}",
        "env_key": config["env_key"],
    }
