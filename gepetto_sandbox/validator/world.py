"""The sandbox validator's in-memory world: chutes, images, GPUs, instances, launch configs,
jobs, bounties, targets and rolling updates, and the operations that change them.

Operations are synchronous and raise ``Rejected(status, detail)`` with the validator's status
codes; each change that the real validator broadcasts is emitted as a ``miner_broadcast``
envelope to the listeners (the socket.io feed) and kept in ``broadcasts`` for tests.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gepetto_core.models.validator import is_launch_config_version
from gepetto_sandbox.validator.catalog import Catalog, iso
from gepetto_sandbox.validator.gpus import GPU_TYPES
from gepetto_sandbox.validator.rows import (
    GpuPlace,
    instance_row,
    launch_claims,
    launch_config_row,
    node_row,
    server_gpu_row,
    server_row,
)
from gepetto_sandbox.validator.rules import (
    Refusal,
    check_private_capacity,
    check_public_capacity,
)

JOB_RACE_LIMIT = 15
JWT_LIFETIME = timedelta(hours=2)


class Rejected(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {detail}")

    @classmethod
    def of(cls, refusal: Refusal) -> Rejected:
        return cls(refusal.status, refusal.detail)


Envelope = dict[str, Any]


class ValidatorWorld:
    def __init__(
        self,
        *,
        validator_hotkey: str,
        clock: Callable[[], float],
        launch_config_key: str = "launch-secret",
        rng: random.Random | None = None,
    ) -> None:
        self.validator_hotkey = validator_hotkey
        self.clock = clock
        self.jwt_secret = hashlib.sha256(launch_config_key.encode()).hexdigest()
        self.rng = rng or random.Random(0)
        self.base_url = "http://127.0.0.1"  # set by the server once it listens
        self.chutes: dict[str, dict[str, Any]] = {}
        self.images: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.capacity_logs: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, int] = {}
        self.nodes: dict[str, dict[str, Any]] = {}  # gpu uuid -> node row
        self.node_instance: dict[str, str] = {}  # gpu uuid -> instance bound to it
        self.servers: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        self.launch_configs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.bounties: dict[str, float] = {}  # chute_id -> created_at (epoch seconds)
        self.rolling_updates: dict[str, dict[str, Any]] = {}
        self.metagraph: set[str] = set()
        self.blacklisted: dict[str, str] = {}
        self.broadcasts: list[Envelope] = []
        self.listeners: list[Callable[[Envelope], None]] = []

    # ---- helpers ------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def broadcast(
        self,
        reason: str,
        data: dict[str, Any],
        *,
        message: str | None = None,
        recipients: list[str] | None = None,
    ) -> None:
        envelope: Envelope = {"reason": reason, "data": data}
        if message is not None:
            envelope["message"] = message
        if recipients is not None:
            envelope["filter_recipients"] = recipients
        self.broadcasts.append(envelope)
        for listener in self.listeners:
            listener(envelope)

    def chute(self, chute_id: str) -> dict[str, Any]:
        chute = self.chutes.get(chute_id)
        if chute is None:
            raise Rejected(404, f"Chute {chute_id} not found")
        return chute

    def counts(self, chute_id: str, hotkey: str | None) -> tuple[int, int, int]:
        """(total, active and verified, the caller's) instances of a chute."""
        total = active = mine = 0
        for inst in self.instances.values():
            if inst["chute_id"] != chute_id:
                continue
            total += 1
            active += inst["active"] and inst["verified"]
            mine += inst["miner_hotkey"] == hotkey
        return total, active, mine

    def target(self, chute_id: str) -> int:
        """Redis `scale:` key, else the latest capacity log, else the current total."""
        if chute_id in self.targets:
            return self.targets[chute_id]
        log = self.capacity_logs.get(chute_id)
        if log is not None and "target_count" in log:
            return int(log["target_count"])
        return self.counts(chute_id, None)[0]

    # ---- setup ---------------------------------------------------------------------------

    def load_catalog(self, catalog: Catalog) -> None:
        for image in catalog.images:
            self.images[image["image_id"]] = dict(image)
        for chute in catalog.chutes:
            self.chutes[chute["chute_id"]] = dict(chute)
        self.metrics.update({k: dict(v) for k, v in catalog.metrics.items()})
        self.capacity_logs.update({k: dict(v) for k, v in catalog.capacity_logs.items()})
        self.targets.update(catalog.targets)
        for inst in catalog.other_instances:
            row = self._instance_row(
                inst["chute_id"], inst["miner_hotkey"], host="10.0.0.1", port=30000
            )
            row.update(inst)
            self.instances[row["instance_id"]] = row

    def register_miner(self, hotkey: str) -> None:
        self.metagraph.add(hotkey)

    def add_server(
        self,
        hotkey: str,
        *,
        name: str,
        gpu_identifier: str,
        gpu_count: int,
        host: str,
        server_id: str | None = None,
        verified: bool = True,
        is_tee: bool = False,
    ) -> dict[str, Any]:
        """A miner server with its GPUs, as if added and verified through `POST /nodes/`."""
        gpu = GPU_TYPES[gpu_identifier]
        server_id = server_id or self._new_id()
        created = iso(self.now())
        gpus = []
        for index in range(gpu_count):
            gpu_uuid = "GPU-" + self._new_id()
            where = GpuPlace(server_id, index, hotkey, host)
            node = node_row(gpu_uuid, gpu, gpu_identifier, where, created, verified=verified)
            self.nodes[gpu_uuid] = node
            gpus.append(server_gpu_row(node))
        server = server_row(server_id, name, host, hotkey, gpus, created, is_tee=is_tee)
        self.servers[server_id] = server
        return server

    # ---- launch configs (docs/protocol.md#launch-configs) -------------------------------------

    def issue_launch_config(
        self, hotkey: str, chute_id: str, job_id: str | None = None
    ) -> dict[str, str]:
        chute = self.chute(chute_id)
        if chute.get("disabled"):
            raise Rejected(423, f"Chute {chute_id} is disabled")
        if job_id is None:
            self._check_capacity(chute, hotkey, consume_quota=False)
        else:
            job = self.jobs.get(job_id)
            if job is None or job["chute_id"] != chute_id:
                raise Rejected(404, f"Job {job_id} not found")
            history: list[str] = job["miner_history"]
            if len(history) >= JOB_RACE_LIMIT:
                raise Rejected(
                    423, f"Job {job_id} is already in a race between {len(history)} miners"
                )
            if hotkey in history:
                raise Rejected(403, f"You have already attempted job {job_id}")
            if any(c["job_id"] == job_id for c in self.launch_configs.values()):
                raise Rejected(409, f"A launch config for job {job_id} already exists")
            history.append(hotkey)
        config_id = self._new_id()
        now = self.now()
        config = launch_config_row(
            config_id, chute_id, job_id, hotkey, seed=self.rng.randrange(1 << 32), now=now
        )
        self.launch_configs[config_id] = config
        claims = launch_claims(config, self.base_url, JWT_LIFETIME)
        if job_id is not None:
            claims["job_id"] = job_id
            claims["disk_gb"] = self.jobs[job_id]["job_args"].get("_disk_gb", 10)
        token = jwt.encode(claims, self.jwt_secret, algorithm="HS256")
        return {"token": token, "config_id": config_id}

    def config_from_token(self, authorization: str | None, config_id: str) -> dict[str, Any]:
        """The launch config a pod's JWT stands for (401 on anything wrong)."""
        token = (authorization or "").split(" ")[-1]
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                issuer="chutes",
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as e:
            raise Rejected(401, "Missing or invalid launch config JWT") from e
        if claims["sub"] != config_id:
            raise Rejected(401, "Launch config ID does not match token!")
        config = self.launch_configs.get(config_id)
        if config is None:
            raise Rejected(401, "Missing or invalid launch config JWT")
        return config

    def claim(
        self, config_id: str, gpus: list[str], host: str, port_mappings: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The pod's first call: creates the (inactive, unverified) instance."""
        config = self.launch_configs[config_id]
        if config["retrieved_at"] is not None:
            raise Rejected(401, "Launch config has already been retrieved; it may be used once.")
        chute = self.chute(config["chute_id"])
        hotkey = config["miner_hotkey"]
        job = self.jobs.get(config["job_id"]) if config["job_id"] else None
        if job is None:
            self._check_capacity(chute, hotkey, consume_quota=True)
        elif job["miner_hotkey"] not in (None, hotkey):
            raise Rejected(409, f"Job {job['job_id']} has already been claimed by another miner")
        if len(set(gpus)) != len(gpus):
            raise Rejected(400, "Duplicate GPU UUIDs in request")
        self._validate_nodes(chute, hotkey, gpus, host)
        config["retrieved_at"] = self.now()
        port = int(port_mappings[0]["external_port"]) if port_mappings else 8000
        instance = self._instance_row(chute["chute_id"], hotkey, host=host, port=port)
        instance.update(config_id=config_id, port_mappings=port_mappings)
        if job is not None or not chute.get("public", True):
            instance["compute_multiplier"] *= 16
            instance["billed_to"] = chute["user_id"]
        if job is not None:
            job.update(miner_hotkey=hotkey, instance_id=instance["instance_id"], status="running")
            instance["job_id"] = job["job_id"]
        self.instances[instance["instance_id"]] = instance
        for gpu in gpus:
            self.node_instance[gpu] = instance["instance_id"]
        config["instance_id"] = instance["instance_id"]
        first_gpu = self.nodes[gpus[0]]
        self.broadcast(
            "instance_created",
            {
                "chute_id": chute["chute_id"],
                "gpu_count": len(gpus),
                "gpu_model_name": first_gpu["name"],
                "miner_hotkey": hotkey,
                "instance_id": instance["instance_id"],
                "config_id": config_id,
            },
            message=f"Instance {instance['instance_id']} of {chute['name']} created",
            recipients=[hotkey],
        )
        plaintext = f"secret is {config_id} {config['seed']}"
        return {
            "seed": config["seed"],
            "iterations": 1,
            "job_id": config["job_id"],
            "symmetric_key": {
                "ciphertext": base64.b64encode(secrets.token_bytes(16) + b"sandbox").decode(),
                "uuid": gpus[0],
                "response_plaintext": plaintext,
            },
        }

    def verify(self, config_id: str) -> dict[str, Any]:
        """The pod proved its GPUs (the sandbox does not check the proof itself)."""
        instance = self._config_instance(config_id)
        if instance["verified"]:
            raise Rejected(400, "Instance has already been verified")
        now = self.now()
        instance.update(verified=True, last_verified_at=iso(now), updated_at=iso(now))
        self.broadcast(
            "instance_verified",
            {"instance_id": instance["instance_id"], "miner_hotkey": instance["miner_hotkey"]},
            recipients=[instance["miner_hotkey"]],
        )
        return {
            "chute_id": instance["chute_id"],
            "instance_id": instance["instance_id"],
            "verified_at": iso(now),
            "activation_url": f"{self.base_url}/instances/launch_config/{config_id}/activate",
        }

    def activate(self, config_id: str) -> dict[str, Any]:
        instance = self._config_instance(config_id)
        if not instance["verified"]:
            raise Rejected(403, "Instance has not been verified yet")
        chute = self.chute(instance["chute_id"])
        legacy_private = not chute.get("public", True) and not is_launch_config_version(
            chute.get("chutes_version")
        )
        if not chute.get("public", True) and not legacy_private:
            _, active, _ = self.counts(chute["chute_id"], None)
            allowed = (active == 0 and chute["chute_id"] in self.bounties) or active < self.target(
                chute["chute_id"]
            )
            if not allowed:
                self.remove_instance(instance["instance_id"], reason="private chute at capacity")
                raise Rejected(423, f"Private chute {chute['chute_id']} is at capacity")
        now = self.now()
        instance.update(active=True, activated_at=iso(now), updated_at=iso(now))
        if instance.get("billed_to"):
            seconds = chute.get("shutdown_after_seconds") or 300
            instance["stop_billing_at"] = (
                (now + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()
            )
            self.bounties.pop(chute["chute_id"], None)
        self.broadcast(
            "instance_activated",
            {
                "chute_id": chute["chute_id"],
                "miner_hotkey": instance["miner_hotkey"],
                "instance_id": instance["instance_id"],
                "config_id": config_id,
            },
            message=f"Instance {instance['instance_id']} of {chute['name']} activated",
            recipients=[instance["miner_hotkey"]],
        )
        return {"ok": True}

    # ---- instances -------------------------------------------------------------------------

    def delete_instance(self, hotkey: str, chute_id: str, instance_id: str) -> dict[str, Any]:
        instance = self.instances.get(instance_id)
        if (
            instance is None
            or instance["chute_id"] != chute_id
            or instance["miner_hotkey"] != hotkey
        ):
            raise Rejected(
                404,
                f"Instance with chute_id={chute_id} and instance_id={instance_id} "
                f"associated with hotkey={hotkey} not found",
            )
        job_id = instance.get("job_id")
        if job_id and job_id in self.jobs and self.jobs[job_id]["status"] != "complete":
            self.jobs[job_id].update(status="error", miner_terminated=True)
        self.remove_instance(instance_id, reason="miner initialized")
        return {"instance_id": instance_id, "deleted": True}

    def remove_instance(self, instance_id: str, *, reason: str = "removed") -> None:
        instance = self.instances.pop(instance_id)
        for gpu, bound in list(self.node_instance.items()):
            if bound == instance_id:
                del self.node_instance[gpu]
        self.broadcast(
            "instance_deleted",
            {
                "chute_id": instance["chute_id"],
                "miner_hotkey": instance["miner_hotkey"],
                "instance_id": instance_id,
                "config_id": instance.get("config_id"),
            },
            message=f"Instance {instance_id} deleted: {reason}",
            recipients=[instance["miner_hotkey"]],
        )

    def announce(
        self, hotkey: str, chute_id: str, node_ids: list[str], host: str, port: int
    ) -> dict[str, Any]:
        """[legacy] `POST /instances/{chute_id}/` for chutes older than 0.3.0."""
        chute = self.chute(chute_id)
        if is_launch_config_version(chute.get("chutes_version")):
            raise Rejected(400, "Your miner is outdated, please update to use launch configs")
        if any(i["host"] == host and i["port"] == port for i in self.instances.values()):
            raise Rejected(409, f"Host/port {host}:{port} is already in use")
        self._check_capacity(chute, hotkey, consume_quota=True)
        self._validate_nodes(chute, hotkey, node_ids, host)
        instance = self._instance_row(chute_id, hotkey, host=host, port=port)
        self.instances[instance["instance_id"]] = instance
        for gpu in node_ids:
            self.node_instance[gpu] = instance["instance_id"]
        return instance

    def legacy_activate(self, hotkey: str, chute_id: str, instance_id: str) -> dict[str, Any]:
        instance = self.instances.get(instance_id)
        if (
            instance is None
            or instance["chute_id"] != chute_id
            or instance["miner_hotkey"] != hotkey
        ):
            raise Rejected(404, f"Instance {instance_id} not found")
        now = iso(self.now())
        # the real validator verifies with GraVal after this; the sandbox verifies at once
        instance.update(active=True, verified=True, activated_at=now, last_verified_at=now)
        return instance

    # ---- internals ---------------------------------------------------------------------------

    def _check_capacity(self, chute: dict[str, Any], hotkey: str, *, consume_quota: bool) -> None:
        chute_id = chute["chute_id"]
        total, active, mine = self.counts(chute_id, hotkey)
        target = self.target(chute_id)
        if not chute.get("public", True) and is_launch_config_version(chute.get("chutes_version")):
            refusal = check_private_capacity(
                chute_id,
                active=active,
                target=target,
                has_bounty=chute_id in self.bounties,
                public_footprint_ok=self._public_footprint_ok(hotkey),
            )
        else:
            rolling = self.rolling_updates.get(chute_id)
            permitted = rolling["permitted"] if rolling else None
            refusal = check_public_capacity(
                chute_id,
                hotkey=hotkey,
                total=total,
                active=active,
                mine=mine,
                target=target,
                rolling_permitted=permitted,
            )
            if refusal is None and consume_quota and permitted and permitted.get(hotkey, 0) > 0:
                permitted[hotkey] -= 1
        if refusal is not None:
            raise Rejected.of(refusal)

    def _public_footprint_ok(self, hotkey: str) -> bool:
        instances = gpus = 0
        for inst in self.instances.values():
            chute = self.chutes.get(inst["chute_id"])
            if inst["miner_hotkey"] == hotkey and inst["active"] and chute and chute["public"]:
                instances += 1
                gpus += chute["node_selector"]["gpu_count"]
        return instances >= 2 and gpus >= 16

    def _validate_nodes(
        self, chute: dict[str, Any], hotkey: str, gpus: Iterable[str], host: str
    ) -> None:
        gpus = list(gpus)
        selector = chute["node_selector"]
        if len(gpus) != selector["gpu_count"]:
            raise Rejected(400, f"Chute requires exactly {selector['gpu_count']} GPUs")
        for gpu in gpus:
            node = self.nodes.get(gpu)
            if node is None or node["miner_hotkey"] != hotkey:
                raise Rejected(404, f"GPU {gpu} not found")
            if not node["verified_at"]:
                raise Rejected(400, f"GPU {gpu} is not yet verified")
            if gpu in self.node_instance:
                raise Rejected(409, f"GPU {gpu} is already assigned to an instance")
            if node["gpu_identifier"] not in selector["supported_gpus"]:
                raise Rejected(400, f"GPU {gpu} is not suitable for this chute")
            if node["verification_host"] != host:
                raise Rejected(400, f"GPU {gpu} host does not match {host}")

    def _config_instance(self, config_id: str) -> dict[str, Any]:
        config = self.launch_configs[config_id]
        if config["failed_at"] is not None:
            raise Rejected(403, "Launch config has failed")
        instance = self.instances.get(config["instance_id"] or "")
        if instance is None:
            raise Rejected(404, "Instance not found")
        return instance

    def _instance_row(self, chute_id: str, hotkey: str, *, host: str, port: int) -> dict[str, Any]:
        now = iso(self.now())
        return instance_row(
            self.chutes[chute_id], hotkey, host=host, port=port, instance_id=self._new_id(), now=now
        )
