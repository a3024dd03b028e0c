"""Deploy and undeploy one chute instance, with rollback (the seed's ChuteDeployer).

Deploy: stub row + atomic GPU claim -> launch config (423: the validator wants no more, a calm
outcome) -> Service -> Job -> host/port recorded, stub cleared -> legacy announce for chutes
older than 0.3.0. Any failure undoes what was made, in reverse order, before the error goes up.

Undeploy: the cluster's delete preflight first (a veto defers the whole undeploy) -> row
removed (GPUs freed) -> validator instance purged (404 is fine) -> Job and
Service deleted -> wait for the pods to go. Removing the row first means that whatever a crash
leaves behind is untracked, and the reconciler purges untracked things; the opposite order
could leave a row pointing at nothing while its GPUs stay claimed.

Both are idempotent and safe beside the autoscaler: GPU claims are one transaction, and a
second undeploy of the same id finds no row and only makes sure the cluster is clean.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from gepetto_core.clock import utcnow
from gepetto_core.errors import (
    ClusterError,
    ConflictError,
    GepettoError,
    NotFoundError,
    ValidatorError,
)
from gepetto_core.kube_objects import JobPort, LaunchParams, uses_launch_config
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.models.state import LedgerEntry
from gepetto_core.models.validator import LaunchConfig
from gepetto_core.ops.metrics import METRICS
from gepetto_core.scheduling.backoff import refusal_reason
from gepetto_core.scheduling.rules import deploy_rejection
from gepetto_core.services.planning_input import deploy_views
from gepetto_core.services.ports import (
    Cluster,
    Inventory,
    ServerMonitoring,
    StateStore,
    ValidatorApi,
)
from gepetto_core.services.removals import Removals

log = logging.getLogger(__name__)


class DeployStep(enum.StrEnum):
    CLAIMED = "claimed"
    LAUNCH_CONFIG = "launch config"
    SERVICE_AND_JOB = "service and job"
    RECORDED = "recorded"
    ANNOUNCED = "announced"


ProgressCallback = Callable[[DeployStep, str], Awaitable[None]]
# (validator hotkey, server_id) -> the server's TEE VM version as the validator reports it.
VmVersionLookup = Callable[[str, str], str | None]


@dataclass(frozen=True)
class DeployRequest:
    chute_id: str
    server_id: str
    job_id: str | None = None
    job_ports: tuple[JobPort, ...] = ()
    disk_gb: int | None = None
    vm_version: str | None = None
    requested_by: str = "gepetto"
    # A launch config obtained beforehand (preemption gets it before removing anything).
    prepared: LaunchConfig | None = None


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    gpus: list[Gpu]
    steps: list[DeployStep]


@dataclass(frozen=True)
class UndeployResult:
    deployment_id: str
    removed: Deployment | None  # None: the row was already gone, or the undeploy was deferred
    warnings: list[str] = field(default_factory=list)
    # Why the cluster's delete preflight vetoed it: nothing was touched, retry later.
    deferred: str | None = None

    @property
    def was_present(self) -> bool:
        return self.removed is not None


class _Progress:
    """The steps a deploy has taken, reported as they happen."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.steps: list[DeployStep] = []
        self._on_progress = on_progress

    async def advance(self, step: DeployStep, detail: str) -> None:
        self.steps.append(step)
        if self._on_progress is not None:
            await self._on_progress(step, detail)


class Deployer:
    def __init__(
        self,
        inventory: Inventory,
        state: StateStore,
        cluster: Cluster,
        validators: Mapping[str, ValidatorApi],
        *,
        clock: Callable[[], datetime] = utcnow,
        undeploy_wait_seconds: float = 180.0,
        vm_version_of: VmVersionLookup | None = None,
        monitoring: ServerMonitoring | None = None,
    ) -> None:
        self._inventory = inventory
        self._state = state
        self._cluster = cluster
        self._validators = validators
        self._clock = clock
        self._undeploy_wait = undeploy_wait_seconds
        self._vm_version_of = vm_version_of
        # Whole servers, chutes and GPUs, each deployment through `undeploy`.
        self.removals = Removals(inventory, cluster, validators, self.undeploy, monitoring)

    def _validator(self, hotkey: str) -> ValidatorApi:
        api = self._validators.get(hotkey)
        if api is None:
            raise NotFoundError("validator", hotkey, list(self._validators))
        return api

    async def server(self, server_id: str) -> Server:
        server = await self._inventory.get_server(server_id)
        if server is None:
            raise NotFoundError("server", server_id)
        return server

    async def _load(self, request: DeployRequest) -> tuple[Chute, Server]:
        chute = await self._inventory.get_chute(request.chute_id)
        if chute is None:
            raise NotFoundError("chute", request.chute_id)
        server = await self.server(request.server_id)
        problem = placement_problem(
            chute, server, await self._inventory.list_gpus(server.server_id)
        )
        removal = (await self._state.list_chute_removals()).get(chute.chute_id)
        if removal is not None:
            problem = f"{removal}; it goes once its deployments are removed"
        if problem:
            raise ConflictError(
                f"cannot deploy {chute.name or chute.chute_id} on {server.name}: {problem}"
            )
        return chute, server

    async def deploy(
        self, request: DeployRequest, on_progress: ProgressCallback | None = None
    ) -> DeployResult:
        chute, server = await self._load(request)
        validator = self._validator(server.validator)
        progress = _Progress(on_progress)
        deployment = Deployment(
            deployment_id=str(uuid.uuid4()),
            validator=server.validator,
            chute_id=chute.chute_id,
            server_id=server.server_id,
            version=chute.version,
            stub=True,
            job_id=request.job_id,
            preemptible=chute.preemptible,
        )
        gpus = await self._inventory.create_deployment(deployment, chute.gpu_count)
        await progress.advance(DeployStep.CLAIMED, f"{len(gpus)} GPU(s) on {server.name}")
        objects_made = False
        try:
            token: SecretStr | None = None
            if uses_launch_config(chute):
                deployment, token = await self._launch_config(
                    deployment, request, validator, progress
                )
            launch = LaunchParams(
                launch_token=token,
                job_ports=request.job_ports,
                disk_gb=request.disk_gb,
                vm_version=self._vm_version(request, server),
            )
            objects_made = True
            deployment, port = await self._make_objects(
                deployment, chute, server, gpus, launch, progress
            )
            if not uses_launch_config(chute):
                deployment = await self._announce(
                    deployment, server, port, gpus, validator, progress
                )
        except BaseException as error:
            await self._roll_back(deployment, objects_made, error)
            raise
        return DeployResult(deployment=deployment, gpus=gpus, steps=progress.steps)

    async def _launch_config(
        self,
        deployment: Deployment,
        request: DeployRequest,
        validator: ValidatorApi,
        progress: _Progress,
    ) -> tuple[Deployment, SecretStr]:
        """The launch config (prepared by the caller, or asked for now) and its token. A 403 is
        kept in the ledger as a refusal before it goes up, so the planner holds the chute."""
        try:
            config = request.prepared or await validator.launch_config(
                deployment.chute_id, request.job_id
            )
        except ValidatorError as refusal:
            if refuses_launch(refusal):
                await self.record_launch_refusal(
                    deployment.chute_id,
                    deployment.server_id,
                    refusal,
                    job_id=request.job_id,
                    deployment_id=deployment.deployment_id,
                )
            raise
        deployment = await self._update(deployment.deployment_id, config_id=config.config_id)
        await progress.advance(DeployStep.LAUNCH_CONFIG, f"config {config.config_id}")
        return deployment, SecretStr(config.token)

    async def _make_objects(
        self,
        deployment: Deployment,
        chute: Chute,
        server: Server,
        gpus: list[Gpu],
        launch: LaunchParams,
        progress: _Progress,
    ) -> tuple[Deployment, int]:
        """The Service and Job, then the row (no longer a stub) and the ledger's start.
        Returns the row and the primary port's node port."""
        made = await self._cluster.deploy_chute(chute, server, gpus, deployment, launch)
        await progress.advance(DeployStep.SERVICE_AND_JOB, f"job {made.job_name}")
        deployment = await self._update(
            deployment.deployment_id,
            host=server.ip_address,
            port=made.primary_port,
            stub=False,
        )
        await self._state.record_deployment_start(
            LedgerEntry(
                deployment_id=deployment.deployment_id,
                chute_id=chute.chute_id,
                server_id=server.server_id,
                gpu_type=gpus[0].model_short_ref,
                validator=server.validator,
                created_at=self._clock(),
            )
        )
        await progress.advance(DeployStep.RECORDED, f"{server.ip_address}:{made.primary_port}")
        return deployment, made.primary_port

    async def _announce(
        self,
        deployment: Deployment,
        server: Server,
        port: int,
        gpus: list[Gpu],
        validator: ValidatorApi,
        progress: _Progress,
    ) -> Deployment:
        """[legacy chutes] tell the validator about the instance ourselves."""
        instance = await validator.announce_instance(
            deployment.chute_id,
            [g.gpu_id for g in gpus],
            server.ip_address or "",
            port,
        )
        deployment = await self._update(deployment.deployment_id, instance_id=instance.instance_id)
        await progress.advance(DeployStep.ANNOUNCED, f"instance {instance.instance_id}")
        return deployment

    def _vm_version(self, request: DeployRequest, server: Server) -> str | None:
        """The server's TEE VM version, which picks the image registry and a TEE chute's
        download settings: as the request gives it, else as the validator last reported it."""
        if request.vm_version is not None or self._vm_version_of is None:
            return request.vm_version
        return self._vm_version_of(server.validator, server.server_id)

    async def record_launch_refusal(
        self,
        chute_id: str,
        server_id: str,
        error: ValidatorError,
        *,
        job_id: str | None = None,
        deployment_id: str | None = None,
    ) -> None:
        """Keep the validator's 403 to a launch in the ledger, as an entry that never counts as
        a failure: the planner then holds the chute (or the job) back instead of asking again
        every round (`scheduling.backoff`). Best effort: the refusal itself goes up."""
        now = self._clock()
        entry_id = deployment_id or str(uuid.uuid4())
        try:
            server = await self.server(server_id)
            gpus = await self._inventory.list_gpus(server_id)
            await self._state.record_deployment_start(
                LedgerEntry(
                    deployment_id=entry_id,
                    chute_id=chute_id,
                    server_id=server_id,
                    gpu_type=gpus[0].model_short_ref if gpus else "unknown",
                    validator=server.validator,
                    created_at=now,
                )
            )
            await self._state.record_deployment_end(
                entry_id, now, refusal_reason(str(error), job_id), counts_as_failure=False
            )
        except GepettoError as e:
            log.warning("launch refusal of chute %s not recorded: %s", chute_id, e)

    async def _update(self, deployment_id: str, **changes: object) -> Deployment:
        updated = await self._inventory.update_deployment(deployment_id, **changes)
        if updated is None:
            # An undeploy (operator, reconcile, event) removed the row while we worked.
            raise ConflictError(f"deployment {deployment_id} was removed while it was deploying")
        return updated

    async def _roll_back(
        self, deployment: Deployment, objects_made: bool, error: BaseException
    ) -> None:
        """Undo a partial deploy in reverse order. Runs on cancellation too: a half-made
        deployment must not be left behind because the caller gave up."""
        reason = f"deploy failed: {error}" if isinstance(error, GepettoError) else "deploy aborted"
        log.info("rolling back deployment %s (%s)", deployment.deployment_id, reason)
        if objects_made:
            with contextlib.suppress(ClusterError):
                await self._cluster.undeploy(
                    deployment.deployment_id, wait_seconds=0, server_id=deployment.server_id
                )
        removed = await self._inventory.delete_deployment(deployment.deployment_id)
        if removed is not None and removed.instance_id:
            with contextlib.suppress(ValidatorError):
                await self._validator(removed.validator).delete_instance(
                    removed.chute_id, removed.instance_id
                )
        # A deploy that never got its Job running is not the chute's fault.
        await self._state.record_deployment_end(
            deployment.deployment_id, self._clock(), reason, counts_as_failure=False
        )

    async def undeploy(
        self, deployment_id: str, reason: str, *, counts_as_failure: bool = False
    ) -> UndeployResult:
        """Row, validator instance, Job and Service, in that order; but only once the cluster's
        delete preflight allows it. A veto leaves everything as it is (the row keeps its GPUs,
        the instance stays) and says why: the next reconcile pass asks again."""
        row = await self._inventory.get_deployment(deployment_id)
        server_id = row.server_id if row is not None else None
        veto = await self.preflight(deployment_id, server_id)
        if veto is not None:
            log.info("undeploy %s deferred: %s", deployment_id, veto)
            METRICS.undeploys.labels(outcome="deferred").inc()
            return UndeployResult(deployment_id, None, [f"deferred: {veto}"], deferred=veto)
        removed = await self._inventory.delete_deployment(deployment_id)
        warnings: list[str] = []
        if removed is not None:
            await self._state.record_deployment_end(
                deployment_id,
                self._clock(),
                reason,
                counts_as_failure=counts_as_failure,
                activated_at=removed.activated_at,
            )
            if removed.instance_id:
                try:
                    await self._validator(removed.validator).delete_instance(
                        removed.chute_id, removed.instance_id
                    )
                except (ValidatorError, NotFoundError) as e:
                    # The instance is untracked now; the reconciler purges it later.
                    warnings.append(f"validator instance not purged yet: {e}")
        try:
            gone = await self._cluster.undeploy(
                deployment_id, wait_seconds=self._undeploy_wait, server_id=server_id
            )
            if not gone:
                warnings.append("pods still terminating")
        except ClusterError as e:
            warnings.append(f"cluster objects not deleted yet: {e}")
        for warning in warnings:
            log.warning("undeploy %s: %s", deployment_id, warning)
        outcome = "already_gone" if removed is None else ("partial" if warnings else "removed")
        METRICS.undeploys.labels(outcome=outcome).inc()
        return UndeployResult(deployment_id, removed, warnings)

    async def preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        """Why this deployment's objects cannot be deleted now (None: they can). The cluster's
        delete preflight (multi-cluster layout: the cached Job is on the server's own cluster,
        that cluster is healthy, the cache is current); a preflight that fails is a veto."""
        try:
            return await self._cluster.delete_preflight(deployment_id, server_id)
        except ClusterError as e:
            return f"delete preflight failed: {e}"


def refuses_launch(error: ValidatorError) -> bool:
    """A 403 to a launch: a rule of the validator keeps the chute (or the job) from us, and
    asking again soon would be refused again."""
    return error.status == 403


def placement_problem(chute: Chute, server: Server, gpus: Sequence[Gpu]) -> str | None:
    """Why this chute cannot go on this server now, or None: the guard every deploy (operator
    or automatic) passes, `scheduling.rules.deploy_rejection` on the inventory rows."""
    rejection = deploy_rejection(*deploy_views(chute, server, gpus))
    return rejection.detail if rejection is not None else None
