"""What each miner event does (`docs/protocol.md#event-feed`), with the upstream bugs fixed:

- `gpu_verified` really marks the GPU verified (upstream compared server_id with the gpu id);
- `instance_activated` checks the miner hotkey and matches by config id or instance id;
- `job_created` reads the validator's `exclude` key (upstream read `excluded`) and takes the
  job's ports and disk from `services.job_launch` (shared with the autoscaler), which fills in
  `disk_gb` when a re-published job lacks it (upstream raised KeyError);
- `server_deleted` (published by the miner API when the operator deletes a server) undeploys
  each deployment from the cluster before the row goes (upstream relied on the cascade and
  left Jobs running), then deregisters the server at the validator, as upstream does. The
  server is locked and a removal request recorded first, so when the delete preflight defers
  an undeploy, or the validator fails, the row stays and reconcile finishes the removal: in
  the multi-cluster layout the row holds the way to the server's cluster;
- `chute_deleted` for a version other than the chute row's removes only that version's
  deployments and keeps the chute (upstream deleted the row whatever its version);
- `chute_deleted` likewise undeploys before the chute row goes; when an undeploy is deferred
  the row stays, with a removal request (the planner leaves the chute alone) that reconcile
  finishes, so the deployment's ledger entry is closed and its Job removed by the deployer;
- an operator's `ban_reason` survives `chute_updated`.

Events that name a miner hotkey other than ours are ignored. A payload without the fields a
reason needs raises InvalidInputError: the intake logs it and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from gepetto_core.clock import utcnow
from gepetto_core.errors import GepettoError, InvalidInputError
from gepetto_core.models.events import EventReason, MinerEvent
from gepetto_core.models.inventory import Deployment
from gepetto_core.scheduling.chute_drift import chute_row_from_remote
from gepetto_core.services.deployer import Deployer, DeployRequest, placement_problem
from gepetto_core.services.job_launch import job_launch
from gepetto_core.services.ports import Inventory, StateStore, ValidatorApi

log = logging.getLogger(__name__)

SERVER_DELETED_REASON = "the server was deleted (miner API)"
CHUTE_DELETED_REASON = "the validator deleted the chute"

# Called when an event may make a new placement worthwhile (the autoscaler's wake-up).
WakeCallback = Callable[[str], Awaitable[None]]


def _field(event: MinerEvent, name: str) -> Any:
    value = event.data.get(name)
    if value is None or value == "":
        raise InvalidInputError(f"{event.reason.value} event without {name!r}")
    return value


def _str_field(event: MinerEvent, name: str) -> str:
    value = _field(event, name)
    if not isinstance(value, str):
        raise InvalidInputError(f"{event.reason.value} event: {name!r} must be a string")
    return value


class EventHandlers:
    """The dispatcher the event intakes deliver to: `await handlers(event)`."""

    def __init__(
        self,
        miner_hotkey: str,
        inventory: Inventory,
        deployer: Deployer,
        validators: Mapping[str, ValidatorApi],
        state: StateStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        wake: WakeCallback | None = None,
    ) -> None:
        self._miner = miner_hotkey
        self._inventory = inventory
        self._state = state
        self._deployer = deployer
        self._validators = validators
        self._clock = clock
        self._wake = wake
        self._handlers: dict[EventReason, Callable[[MinerEvent], Awaitable[None]]] = {
            EventReason.INSTANCE_CREATED: self._instance_created,
            EventReason.INSTANCE_VERIFIED: self._instance_verified,
            EventReason.INSTANCE_ACTIVATED: self._instance_activated,
            EventReason.INSTANCE_DELETED: self._instance_deleted,
            EventReason.CHUTE_CREATED: self._chute_saved,
            EventReason.CHUTE_UPDATED: self._chute_saved,
            EventReason.CHUTE_DELETED: self._chute_deleted,
            EventReason.IMAGE_UPDATED: self._image_updated,
            EventReason.IMAGE_CREATED: self._log_only,
            EventReason.IMAGE_DELETED: self._log_only,
            EventReason.ROLLING_UPDATE: self._rolling_update,
            EventReason.JOB_CREATED: self._job_created,
            EventReason.JOB_DELETED: self._job_deleted,
            EventReason.BOUNTY_CHANGE: self._bounty_change,
            EventReason.GPU_VERIFIED: self._gpu_verified,
            EventReason.GPU_DELETED: self._gpu_deleted,
            EventReason.SERVER_DELETED: self._server_deleted,
        }

    async def __call__(self, event: MinerEvent) -> None:
        hotkey = event.data.get("miner_hotkey")
        if hotkey is not None and hotkey != self._miner:
            return  # another miner's instance or GPU
        if event.validator is not None and event.validator not in self._validators:
            log.info("event %s from unknown validator %s ignored", event.reason, event.validator)
            return
        await self._handlers[event.reason](event)

    def _api(self, event: MinerEvent) -> ValidatorApi:
        if event.validator is None:
            raise InvalidInputError(f"{event.reason.value} event without a validator")
        return self._validators[event.validator]

    async def _wake_autoscaler(self, why: str) -> None:
        if self._wake is not None:
            await self._wake(why)

    async def _one(self, **match: str) -> Deployment | None:
        found = await self._inventory.find_deployments(**match)
        return found[0] if found else None

    # --- instances ------------------------------------------------------------------------
    async def _instance_created(self, event: MinerEvent) -> None:
        instance_id = _str_field(event, "instance_id")
        config_id = _str_field(event, "config_id")
        deployment = await self._one(config_id=config_id)
        if deployment is None:
            log.info("instance_created for unknown config %s (reconcile will purge it)", config_id)
            return
        await self._inventory.update_deployment(deployment.deployment_id, instance_id=instance_id)

    async def _instance_verified(self, event: MinerEvent) -> None:
        deployment = await self._one(instance_id=_str_field(event, "instance_id"))
        if deployment is not None and deployment.verified_at is None:
            await self._inventory.update_deployment(
                deployment.deployment_id, verified_at=self._clock()
            )

    async def _instance_activated(self, event: MinerEvent) -> None:
        config_id = event.data.get("config_id")
        instance_id = _str_field(event, "instance_id")
        deployment = await self._one(config_id=config_id) if config_id else None
        deployment = deployment or await self._one(instance_id=instance_id)
        if deployment is None:
            return
        now = self._clock()
        await self._inventory.update_deployment(
            deployment.deployment_id,
            instance_id=instance_id,
            active=True,
            activated_at=deployment.activated_at or now,
            verified_at=deployment.verified_at or now,
            stub=False,
        )

    async def _instance_deleted(self, event: MinerEvent) -> None:
        deployment = await self._one(instance_id=_str_field(event, "instance_id"))
        if deployment is not None:
            await self._deployer.undeploy(
                deployment.deployment_id,
                "the validator deleted the instance",
                counts_as_failure=True,
            )
            await self._wake_autoscaler("instance deleted")

    # --- chutes and images ----------------------------------------------------------------
    async def _chute_saved(self, event: MinerEvent) -> None:
        chute_id = _str_field(event, "chute_id")
        version = _str_field(event, "version")
        local = await self._inventory.get_chute(chute_id)
        if event.reason is EventReason.CHUTE_CREATED and local and local.version == version:
            return
        remote = await self._api(event).get_chute(chute_id, version)
        row = chute_row_from_remote(remote, self._api(event).validator_hotkey, remote.image, local)
        await self._inventory.upsert_chute(row)
        if event.reason is EventReason.CHUTE_CREATED and not event.data.get("job_only"):
            await self._wake_autoscaler(f"chute {chute_id} created")

    async def _chute_deleted(self, event: MinerEvent) -> None:
        chute_id = _str_field(event, "chute_id")
        version = event.data.get("version")
        local = await self._inventory.get_chute(chute_id)
        if local is not None and isinstance(version, str) and version != local.version:
            # Only an older version is gone (upstream then deleted the row of the current one
            # too, for reconcile to create it again): its deployments go, the chute stays.
            for d in await self._inventory.find_deployments(chute_id=chute_id):
                if d.version == version:
                    await self._deployer.undeploy(
                        d.deployment_id, f"chute version {version} deleted"
                    )
            return
        deferred = await self._deployer.removals.remove_chute(chute_id, "chute deleted")
        if not deferred:
            return
        await self._state.request_chute_removal(chute_id, CHUTE_DELETED_REASON)
        log.warning(
            "chute %s deleted by the validator: kept, not scaled, until reconcile removes %s",
            chute_id,
            "; ".join(f"{r.deployment_id}: {r.deferred}" for r in deferred),
        )

    async def _image_updated(self, event: MinerEvent) -> None:
        chute_ids = _field(event, "chute_ids")
        image = _str_field(event, "image")
        if not isinstance(chute_ids, list) or not all(isinstance(c, str) for c in chute_ids):
            raise InvalidInputError("image_updated event: 'chute_ids' must be a list of ids")
        await self._inventory.set_chute_image(chute_ids, image, event.data.get("chutes_version"))

    async def _log_only(self, event: MinerEvent) -> None:
        log.info("event %s: %s", event.reason.value, event.data.get("image_id"))

    async def _rolling_update(self, event: MinerEvent) -> None:
        """Redeploy our instance at the new version on the same server, when its GPUs still
        fit; otherwise just remove it (the autoscaler may place the chute elsewhere)."""
        chute_id = _str_field(event, "chute_id")
        new_version = _str_field(event, "new_version")
        deployment = await self._one(instance_id=_str_field(event, "instance_id"))
        if deployment is None or deployment.job_id:
            return
        await self._deployer.undeploy(deployment.deployment_id, "rolling update")
        api = self._api(event)
        local = await self._inventory.get_chute(chute_id)
        if local is None or local.version != new_version:
            remote = await api.get_chute(chute_id, new_version)
            image = str(event.data.get("image") or remote.image)
            await self._inventory.upsert_chute(
                chute_row_from_remote(remote, api.validator_hotkey, image, local)
            )
        chute = await self._inventory.get_chute(chute_id)
        server = await self._inventory.get_server(deployment.server_id)
        if chute is None or server is None:
            return
        gpus = await self._inventory.list_gpus(server.server_id)
        problem = placement_problem(chute, server, gpus)
        if problem:
            log.info(
                "rolling update of %s: not redeploying on %s: %s", chute_id, server.name, problem
            )
            await self._wake_autoscaler(f"rolling update of {chute_id}")
            return
        try:
            await self._deployer.deploy(DeployRequest(chute_id, server.server_id))
        except GepettoError as e:
            log.warning("rolling update of %s on %s failed: %s", chute_id, server.name, e)

    # --- jobs and bounties ------------------------------------------------------------------
    async def _job_created(self, event: MinerEvent) -> None:
        job_id = _str_field(event, "job_id")
        chute_id = _str_field(event, "chute_id")
        excluded = event.data.get("exclude") or []
        if self._miner in excluded:
            return
        if await self._inventory.find_deployments(job_id=job_id):
            # A redelivered event: the job is already ours (a second attempt would be refused
            # and the refusal would release the job we are running).
            return
        chute = await self._inventory.get_chute(chute_id)
        if chute is None:
            return
        api = self._api(event)
        remote = await api.get_chute(chute_id, chute.version)
        launch = job_launch(
            remote.jobs, method=event.data.get("method"), disk_gb=event.data.get("disk_gb")
        )
        servers = sorted(await self._inventory.list_servers(), key=lambda s: s.hourly_cost)
        for server in servers:
            if placement_problem(chute, server, await self._inventory.list_gpus(server.server_id)):
                continue
            try:
                await self._deployer.deploy(
                    DeployRequest(
                        chute_id,
                        server.server_id,
                        job_id=job_id,
                        job_ports=launch.ports,
                        disk_gb=launch.disk_gb,
                    )
                )
                return
            except GepettoError as e:
                log.warning("job %s on %s failed: %s; releasing it", job_id, server.name, e)
                await api.release_job(job_id)
                return
        # No free server: preempting for jobs is the autoscaler's decision.
        await self._wake_autoscaler(f"job {job_id} for {chute_id}")

    async def _job_deleted(self, event: MinerEvent) -> None:
        deployment = await self._one(job_id=_str_field(event, "job_id"))
        if deployment is not None:
            await self._deployer.undeploy(deployment.deployment_id, "job finished")

    async def _bounty_change(self, event: MinerEvent) -> None:
        chute_id = _str_field(event, "chute_id")
        if not await self._inventory.find_deployments(chute_id=chute_id):
            await self._wake_autoscaler(f"bounty on {chute_id}")

    # --- GPUs and servers -------------------------------------------------------------------
    async def _gpu_verified(self, event: MinerEvent) -> None:
        if await self._inventory.set_gpu_verified(_str_field(event, "gpu_id"), True):
            await self._wake_autoscaler("GPU verified")

    async def _gpu_deleted(self, event: MinerEvent) -> None:
        gpu_id = _str_field(event, "gpu_id")
        gpu = next((g for g in await self._inventory.list_gpus() if g.gpu_id == gpu_id), None)
        if gpu is None:
            return
        kept = await self._deployer.removals.remove_gpu(gpu, "GPU removed")
        if kept is not None:
            log.warning("GPU %s kept: its deployment's removal %s", gpu_id, kept)

    async def _server_deleted(self, event: MinerEvent) -> None:
        server_id = _str_field(event, "server_id")
        # The request first: whatever stops this handler (a deferred undeploy, a validator
        # error) leaves the server locked and requested, and reconcile finishes the removal.
        if not await self._state.request_server_removal(server_id, SERVER_DELETED_REASON):
            return  # no such server
        await self._inventory.set_server_locked(server_id, True)
        deferred = await self._deployer.removals.remove_server(
            server_id, SERVER_DELETED_REASON, deregister=True
        )
        if deferred:
            log.warning(
                "server %s deleted: kept, locked, until reconcile removes %s",
                server_id,
                "; ".join(f"{r.deployment_id}: {r.deferred}" for r in deferred),
            )
