"""Validator-side happenings the sandbox can stage: jobs, bounties, chute life cycle and rolling
updates (`docs/protocol.md`). Each one changes the world and broadcasts what the real
validator broadcasts."""

from __future__ import annotations

import uuid
from typing import Any

from gepetto_sandbox.validator.catalog import iso
from gepetto_sandbox.validator.gpus import full_selector
from gepetto_sandbox.validator.rules import bounty_amount
from gepetto_sandbox.validator.world import Rejected, ValidatorWorld


def create_job(
    world: ValidatorWorld, chute_id: str, *, method: str = "run", disk_gb: int = 10
) -> dict[str, Any]:
    chute = world.chute(chute_id)
    selector = chute["node_selector"]
    multiplier = float(selector["compute_multiplier"])
    if selector.get("include") == ["h200"]:
        multiplier *= 16
    now = iso(world.now())
    job = {
        "job_id": str(uuid.UUID(int=world.rng.getrandbits(128), version=4)),
        "user_id": chute["user_id"],
        "chute_id": chute_id,
        "version": chute["version"],
        "chutes_version": chute.get("chutes_version"),
        "method": method,
        "miner_uid": None,
        "miner_hotkey": None,
        "miner_coldkey": None,
        "instance_id": None,
        "active": False,
        "verified": False,
        "last_queried_at": None,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "job_args": {"_disk_gb": disk_gb},
        "node_selector": selector,
        "status": "pending",
        "result": None,
        "error_detail": None,
        "output_files": None,
        "miner_terminated": False,
        "port_mappings": None,
        "miner_history": [],
        "compute_multiplier": multiplier,
    }
    world.jobs[job["job_id"]] = job
    world.broadcast("job_created", _job_created_data(job, disk_gb))
    return job


def _job_created_data(job: dict[str, Any], disk_gb: int | None) -> dict[str, Any]:
    data = {
        "job_id": job["job_id"],
        "method": job["method"],
        "chute_id": job["chute_id"],
        "image_id": None,
        "gpu_count": job["node_selector"]["gpu_count"],
        "compute_multiplier": job["compute_multiplier"],
        "exclude": [],
    }
    if disk_gb is not None:
        data["disk_gb"] = disk_gb
    return data


def release_job(world: ValidatorWorld, hotkey: str, job_id: str) -> None:
    """`DELETE /miner/jobs/{id}`: the miner gives an unfinished job back to the others."""
    job = world.jobs.get(job_id)
    if job is None or job["miner_hotkey"] != hotkey or job["finished_at"] is not None:
        raise Rejected(404, f"job_id='{job_id}' not found or is not associated with your miner")
    job.update(
        miner_uid=None, miner_hotkey=None, miner_coldkey=None, instance_id=None, status="pending"
    )
    for config in world.launch_configs.values():
        if config["job_id"] == job_id:
            config["job_id"] = None  # frees the one-config-per-job slot
    # the re-broadcast lacks disk_gb, as the real validator's does
    world.broadcast("job_created", _job_created_data(job, None))


def finish_job(world: ValidatorWorld, job_id: str, *, status: str = "complete") -> None:
    job = world.jobs[job_id]
    job.update(status=status, finished_at=iso(world.now()))
    world.broadcast("job_deleted", {"instance_id": job["instance_id"], "job_id": job_id})


def create_bounty(world: ValidatorWorld, chute_id: str) -> int:
    """A request found no routable instance: start (or keep) the chute's bounty."""
    world.chute(chute_id)
    if chute_id in world.rolling_updates:
        return 0
    created = world.bounties.setdefault(chute_id, world.clock())
    amount = bounty_amount(created, world.clock())
    world.broadcast("bounty_change", {"chute_id": chute_id, "bounty": amount})
    return amount


def add_chute(world: ValidatorWorld, chute: dict[str, Any]) -> dict[str, Any]:
    row = dict(chute)
    row["node_selector"] = full_selector(row.get("node_selector", {}))
    row.setdefault("supported_gpus", row["node_selector"]["supported_gpus"])
    world.chutes[row["chute_id"]] = row
    world.broadcast(
        "chute_created",
        {"chute_id": row["chute_id"], "version": row["version"], "job_only": not row["cords"]},
    )
    return row


def delete_chute(world: ValidatorWorld, chute_id: str) -> None:
    chute = world.chutes.pop(chute_id)
    for instance_id in [i for i, inst in world.instances.items() if inst["chute_id"] == chute_id]:
        world.instances.pop(instance_id)
    world.broadcast("chute_deleted", {"chute_id": chute_id, "version": chute["version"]})


def update_chute(world: ValidatorWorld, chute_id: str, *, code: str | None = None) -> str:
    """A new version of the chute; with instances running, a rolling update starts (every
    instance's owner gets a ``rolling_update`` event and a quota of as many new instances)."""
    chute = world.chute(chute_id)
    old_version = chute["version"]
    new_code = code if code is not None else chute["code"] + f"\n# rev {world.rng.random()}\n"
    new_version = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{chute['image_id']}:{new_code}"))
    chute.update(code=new_code, version=new_version, updated_at=iso(world.now()))
    instances = [i for i in world.instances.values() if i["chute_id"] == chute_id]
    if instances:
        permitted: dict[str, int] = {}
        for inst in instances:
            permitted[inst["miner_hotkey"]] = permitted.get(inst["miner_hotkey"], 0) + 1
        world.rolling_updates[chute_id] = {
            "chute_id": chute_id,
            "old_version": old_version,
            "new_version": new_version,
            "started_at": iso(world.now()),
            "permitted": permitted,
        }
    world.broadcast(
        "chute_updated",
        {"chute_id": chute_id, "version": new_version, "job_only": not chute["cords"]},
    )
    for inst in instances:
        world.broadcast(
            "rolling_update",
            {
                "chute_id": chute_id,
                "instance_id": inst["instance_id"],
                "miner_hotkey": inst["miner_hotkey"],
                "old_version": old_version,
                "new_version": new_version,
                "reason": "code change",
            },
            recipients=[inst["miner_hotkey"]],
        )
    return new_version


def finish_rolling_update(world: ValidatorWorld, chute_id: str) -> None:
    """The end of the update loop: instances still on the old version are deleted."""
    update = world.rolling_updates.pop(chute_id)
    stale = [
        i
        for i, inst in world.instances.items()
        if inst["chute_id"] == chute_id and inst["version"] == update["old_version"]
    ]
    for instance_id in stale:
        world.remove_instance(instance_id, reason="rolling update")


def delete_node(world: ValidatorWorld, hotkey: str, node_id: str) -> dict[str, Any]:
    """`DELETE /nodes/{node_id}` (purpose `nodes`): the caller's own GPU only, else 404. An
    instance on it goes with it (a sandbox choice: the GPU that ran it is gone)."""
    node = world.nodes.get(node_id)
    if node is None or node["miner_hotkey"] != hotkey:
        raise Rejected(404, f"Node {node_id} not found")
    _forget_nodes(world, [node_id])
    for server in world.servers.values():
        server["gpus"] = [g for g in server["gpus"] if g["uuid"] != node_id]
    return {"node_id": node_id, "deleted": True}


def delete_server(world: ValidatorWorld, hotkey: str, server_id: str) -> dict[str, Any]:
    """`DELETE /servers/{server_id}` (purpose `tee`): the caller's own server only, else 404;
    its GPUs (and instances on them) go with it."""
    server = world.servers.get(server_id)
    if server is None or server["miner_hotkey"] != hotkey:
        raise Rejected(404, f"Server {server_id} not found")
    _forget_nodes(world, [g["uuid"] for g in server["gpus"]])
    del world.servers[server_id]
    return {"server_id": server_id, "deleted": True}


def _forget_nodes(world: ValidatorWorld, node_ids: list[str]) -> None:
    for node_id in node_ids:
        instance_id = world.node_instance.get(node_id)
        if instance_id is not None and instance_id in world.instances:
            world.remove_instance(instance_id, reason="its node was deleted")
        world.nodes.pop(node_id, None)
