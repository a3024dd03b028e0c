"""Reconcile (recycle): gather the three views, plan with the pure planner, apply the plan.

Reading order matters and is fixed here: the cluster and the validator first, the database
last (see `scheduling/reconcile_plan.py`). Every action is applied on its own; one that fails is
reported and the rest go on — the next pass retries what is still wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from gepetto_core.clock import utcnow
from gepetto_core.errors import ClusterError, GepettoError
from gepetto_core.models.cluster import ClusterHealth, FleetReading
from gepetto_core.models.inventory import Server
from gepetto_core.ops.metrics import METRICS
from gepetto_core.scheduling.chute_drift import chute_row_from_remote
from gepetto_core.scheduling.reconcile_actions import (
    Action,
    DeleteChute,
    DeleteJob,
    DeleteService,
    MirrorState,
    PurgeInstance,
    ReconcilePlan,
    RemoveDeployment,
    RemoveServer,
    SaveChute,
    SetInstanceId,
)
from gepetto_core.scheduling.reconcile_clusters import is_single_layout
from gepetto_core.scheduling.reconcile_plan import (
    ReconcileInputs,
    ReconcilePolicy,
    RemoteView,
    missing_instances,
    plan_reconcile,
)
from gepetto_core.services.deployer import Deployer
from gepetto_core.services.ports import Cluster, Inventory, StateStore, ValidatorApi
from gepetto_core.services.sync import ListState, SyncService, ValidatorSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
LOG_LINES = 10


@dataclass(frozen=True)
class ActionResult:
    action: Action
    ok: bool
    detail: str = ""
    # The chute's last log lines, read before a failed deployment is removed (for alerts).
    logs: tuple[str, ...] = ()
    # The delete preflight's veto: not done, nothing touched, retried next pass.
    deferred: str | None = None


class DeferredError(GepettoError):
    """The cluster's delete preflight vetoed a removal: nothing was touched, the next pass
    tries again."""

    def __init__(self, veto: str) -> None:
        super().__init__(f"deferred: {veto}")
        self.veto = veto


@dataclass(frozen=True)
class ReconcileReport:
    plan: ReconcilePlan
    results: list[ActionResult] = field(default_factory=list)
    applied: bool = False
    # The clusters' health as this pass read it (one entry named "*" in the single layout).
    health: list[ClusterHealth] = field(default_factory=list)
    # Dry run: the delete preflight's veto of each removal it would make, by action index.
    verdicts: dict[int, str] = field(default_factory=dict)

    def verdict(self, index: int) -> str | None:
        return self.verdicts.get(index)

    @property
    def failures(self) -> list[ActionResult]:
        return [r for r in self.results if not r.ok]


def _fresh(state: ListState[T]) -> list[T] | None:
    """A list confirmed by this sync's own fetch, or None (failed, or no information)."""
    if state.last_error is not None or state.fetched_at is None:
        return None
    if state.attempted_at is not None and state.attempted_at != state.fetched_at:
        return None
    return list(state.items.values())


def remote_view(snapshot: ValidatorSnapshot) -> RemoteView:
    return RemoteView(
        instances=_fresh(snapshot.instances),
        chutes=_fresh(snapshot.chutes),
        images=_fresh(snapshot.images),
        rolling_updates=_fresh(snapshot.rolling_updates),
    )


def unknown_servers(reading: FleetReading, servers: Sequence[Server]) -> dict[str, str]:
    """The servers whose cluster the reading could not see (server id -> why), matched by
    name: a server's cluster is named after it (kubeconfig context = servers.name)."""
    if not reading.unknown:
        return {}
    return {s.server_id: reading.unknown[s.name] for s in servers if s.name in reading.unknown}


class Reconciler:
    def __init__(
        self,
        inventory: Inventory,
        cluster: Cluster,
        sync: SyncService,
        deployer: Deployer,
        validators: Mapping[str, ValidatorApi],
        state: StateStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: ReconcilePolicy | None = None,
    ) -> None:
        self._inventory = inventory
        self._state = state
        self._cluster = cluster
        self._sync = sync
        self._deployer = deployer
        self._validators = validators
        self._clock = clock
        self._policy = policy or ReconcilePolicy()
        self._lock = asyncio.Lock()
        # deployment id -> when its validator instance was first seen missing (lost on restart,
        # which only restarts the grace period)
        self._missing_since: dict[str, datetime] = {}

    async def read(self) -> tuple[ReconcileInputs, list[ClusterHealth]]:
        """Everything the planner needs, and the clusters' health as this read found it."""
        reading, snapshots = await asyncio.gather(self._read_fleet(), self._sync.sync_all())
        # The database last: anything seen above already has its row (rows come first).
        deployments = await self._inventory.list_deployments()
        chutes = await self._inventory.list_chutes()
        servers = await self._inventory.list_servers()
        server_removals = await self._state.list_server_removals()
        chute_removals = await self._state.list_chute_removals()
        inputs = ReconcileInputs(
            deployments=deployments,
            chutes=chutes,
            servers=servers,
            jobs=reading.jobs,
            legacy=reading.legacy,
            services=reading.services,
            nodes=reading.nodes,
            remote={hotkey: remote_view(s) for hotkey, s in snapshots.items()},
            unknown_servers=unknown_servers(reading, servers),
            cluster_per_server=not is_single_layout(reading.health),
            server_removals=server_removals,
            chute_removals=chute_removals,
        )
        return inputs, list(reading.health)

    async def _read_fleet(self) -> FleetReading:
        try:
            reading = await self._cluster.read_fleet()
        except ClusterError as e:  # the port answers with None lists; this is a safety net
            log.warning("reconcile: reading the cluster failed: %s", e)
            return FleetReading(jobs=None, legacy=None, services=None, nodes=None)
        for health in reading.health:
            if health.state == "unreachable":
                log.warning("reconcile: cluster %s unreachable: %s", health.name, health.error)
        return reading

    async def run_once(self, *, dry_run: bool = False, force: bool = False) -> ReconcileReport:
        """One pass. `force` lifts the mass-removal guard (never the incomplete-data one)."""
        async with self._lock:
            inputs, health = await self.read()
            now = self._clock()
            self._missing_since = {
                d: self._missing_since.get(d, now) for d in missing_instances(inputs)
            }
            inputs = replace(inputs, missing_since=dict(self._missing_since))
            policy = replace(self._policy, max_removal_fraction=1.0) if force else self._policy
            plan = plan_reconcile(inputs, now, policy)
            for problem in plan.problems:
                log.warning("reconcile: %s", problem)
            if dry_run:
                verdicts = await self._verdicts(plan, inputs)
                return ReconcileReport(plan, health=health, verdicts=verdicts)
            results = [await self._apply(action, inputs) for action in plan.actions]
            for result in results:
                outcome = "ok" if result.ok else "deferred" if result.deferred else "failed"
                METRICS.decisions.labels(kind="reconcile", outcome=outcome).inc()
            return ReconcileReport(plan, results, applied=True, health=health)

    async def _verdicts(self, plan: ReconcilePlan, inputs: ReconcileInputs) -> dict[int, str]:
        """For a dry run: the delete preflight's veto for each removal the plan would make
        (by the action's index in the plan; removals not vetoed are absent)."""
        server_of = {d.deployment_id: d.server_id for d in inputs.deployments}
        verdicts: dict[int, str] = {}
        for index, action in enumerate(plan.actions):
            match action:
                case RemoveDeployment(deployment_id=d):
                    veto = await self._deployer.preflight(d, server_of.get(d))
                case DeleteJob(deployment_id=d) | DeleteService(deployment_id=d):
                    veto = await self._deployer.preflight(d, None)
                case RemoveServer(server_id=s):
                    veto = await self._first_veto(
                        [(r.deployment_id, s) for r in inputs.deployments if r.server_id == s]
                    )
                case DeleteChute(chute_id=c):
                    veto = await self._first_veto(
                        [
                            (r.deployment_id, r.server_id)
                            for r in inputs.deployments
                            if r.chute_id == c
                        ]
                    )
                case _:
                    veto = None
            if veto is not None:
                verdicts[index] = veto
        return verdicts

    async def _first_veto(self, deployments: list[tuple[str, str]]) -> str | None:
        """The first veto among (deployment id, server id)."""
        for deployment_id, server_id in deployments:
            veto = await self._deployer.preflight(deployment_id, server_id)
            if veto is not None:
                return veto
        return None

    async def _apply(self, action: Action, inputs: ReconcileInputs) -> ActionResult:
        logs: tuple[str, ...] = ()
        if isinstance(action, RemoveDeployment) and action.end == "failure":
            logs = await self._last_log_lines(action.deployment_id)
        try:
            detail = await self._apply_one(action, inputs)
        except DeferredError as e:
            log.info("reconcile: %s %s", type(action).__name__, e)
            return ActionResult(action, False, str(e), logs, deferred=e.veto)
        except GepettoError as e:
            log.warning("reconcile: %s failed: %s", type(action).__name__, e)
            return ActionResult(action, False, str(e), logs)
        return ActionResult(action, True, detail, logs)

    async def _last_log_lines(self, deployment_id: str) -> tuple[str, ...]:
        """Read while the pod still exists: after the undeploy the log is gone for good."""
        try:
            return tuple(await self._cluster.pod_log_tail(deployment_id, LOG_LINES))
        except ClusterError as e:
            log.info("no log lines for %s: %s", deployment_id, e)
            return ()

    async def _apply_one(self, action: Action, inputs: ReconcileInputs) -> str:
        now = self._clock()
        match action:
            case SetInstanceId(deployment_id=d, instance_id=i):
                await self._inventory.update_deployment(d, instance_id=i)
                return f"instance {i}"
            case MirrorState(deployment_id=d, verified=verified, active=active):
                changes: dict[str, Any] = {}
                if verified:
                    changes["verified_at"] = now
                if active is not None:
                    changes["active"] = active
                    if active:
                        changes.update(activated_at=now, stub=False)
                await self._inventory.update_deployment(d, **changes)
                return ", ".join(changes)
            case RemoveDeployment(deployment_id=d, reason=reason, end=end):
                result = await self._deployer.undeploy(
                    d, reason, counts_as_failure=end == "failure"
                )
                if result.deferred is not None:
                    raise DeferredError(result.deferred)
                return "; ".join(result.warnings) or "removed"
            case PurgeInstance(validator=v, chute_id=c, instance_id=i):
                api = self._validators[v]
                return "purged" if await api.delete_instance(c, i) else "already gone"
            case DeleteJob(deployment_id=d) | DeleteService(deployment_id=d):
                veto = await self._deployer.preflight(d, None)
                if veto is not None:
                    raise DeferredError(veto)
                await self._cluster.undeploy(d, wait_seconds=0)
                return "deleted"
            case SaveChute(validator=v, chute_id=c, image=image):
                remote = self._sync.snapshot(v).chutes.items.get(c)
                if remote is None:
                    return "chute no longer listed"
                local = next((x for x in inputs.chutes if x.chute_id == c), None)
                await self._inventory.upsert_chute(chute_row_from_remote(remote, v, image, local))
                return f"version {remote.version[:8]}"
            case DeleteChute(chute_id=c, reason=reason):
                deferred = await self._deployer.removals.remove_chute(c, reason)
                if deferred:
                    raise DeferredError(str(deferred[0].deferred))
                name = next((x.name for x in inputs.chutes if x.chute_id == c and x.name), c)
                return f"chute {name} deleted"
            case RemoveServer(server_id=s, reason=reason):
                # Only a server the operator deleted leaves the validator; one whose node is
                # gone may come back.
                deregister = s in inputs.server_removals
                deferred = await self._deployer.removals.remove_server(
                    s, reason, deregister=deregister
                )
                if deferred:
                    raise DeferredError(str(deferred[0].deferred))
                name = next((x.name for x in inputs.servers if x.server_id == s), s)
                return f"server {name} removed"
        raise AssertionError(f"unhandled reconcile action {action!r}")
