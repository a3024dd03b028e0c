"""Reconcile (recycle): gather the three views, plan with the pure planner, apply the plan.

Reading order matters and is fixed here: the cluster and the validator first, the database
last (see `scheduling/reconcile_plan.py`). Every action is applied on its own; one that fails is
reported and the rest go on — the next pass retries what is still wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from gepetto_core.clock import utcnow
from gepetto_core.errors import ClusterError, GepettoError
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
from gepetto_core.scheduling.reconcile_plan import (
    ReconcileInputs,
    ReconcilePolicy,
    RemoteView,
    missing_instances,
    plan_reconcile,
)
from gepetto_core.services.deployer import Deployer
from gepetto_core.services.ports import Cluster, Inventory, ValidatorApi
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


@dataclass(frozen=True)
class ReconcileReport:
    plan: ReconcilePlan
    results: list[ActionResult] = field(default_factory=list)
    applied: bool = False

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


async def _or_none(what: str, call: Callable[[], Awaitable[T]]) -> T | None:
    try:
        return await call()
    except ClusterError as e:
        log.warning("reconcile: %s failed: %s", what, e)
        return None


class Reconciler:
    def __init__(
        self,
        inventory: Inventory,
        cluster: Cluster,
        sync: SyncService,
        deployer: Deployer,
        validators: Mapping[str, ValidatorApi],
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: ReconcilePolicy | None = None,
    ) -> None:
        self._inventory = inventory
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

    async def gather(self) -> ReconcileInputs:
        jobs, legacy, services, nodes, snapshots = await asyncio.gather(
            _or_none("listing jobs", self._cluster.list_chute_jobs),
            _or_none("listing legacy deployments", self._cluster.list_legacy_deployments),
            _or_none("listing services", self._cluster.list_chute_services),
            _or_none("listing nodes", lambda: self._cluster.list_nodes(None)),
            self._sync.sync_all(),
        )
        # The database last: anything seen above already has its row (rows come first).
        deployments = await self._inventory.list_deployments()
        chutes = await self._inventory.list_chutes()
        servers = await self._inventory.list_servers()
        return ReconcileInputs(
            deployments=deployments,
            chutes=chutes,
            servers=servers,
            jobs=jobs,
            legacy=legacy,
            services=services,
            nodes=nodes,
            remote={hotkey: remote_view(s) for hotkey, s in snapshots.items()},
        )

    async def run_once(self, *, dry_run: bool = False, force: bool = False) -> ReconcileReport:
        """One pass. `force` lifts the mass-removal guard (never the incomplete-data one)."""
        async with self._lock:
            inputs = await self.gather()
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
                return ReconcileReport(plan)
            results = [await self._apply(action, inputs) for action in plan.actions]
            for result in results:
                outcome = "ok" if result.ok else "failed"
                METRICS.decisions.labels(kind="reconcile", outcome=outcome).inc()
            return ReconcileReport(plan, results, applied=True)

    async def _apply(self, action: Action, inputs: ReconcileInputs) -> ActionResult:
        logs: tuple[str, ...] = ()
        if isinstance(action, RemoveDeployment) and action.end == "failure":
            logs = await self._last_log_lines(action.deployment_id)
        try:
            detail = await self._apply_one(action, inputs)
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
                return "; ".join(result.warnings) or "removed"
            case PurgeInstance(validator=v, chute_id=c, instance_id=i):
                api = self._validators[v]
                return "purged" if await api.delete_instance(c, i) else "already gone"
            case DeleteJob(deployment_id=d) | DeleteService(deployment_id=d):
                await self._cluster.undeploy(d, wait_seconds=0)
                return "deleted"
            case SaveChute(validator=v, chute_id=c, image=image):
                remote = self._sync.snapshot(v).chutes.items.get(c)
                if remote is None:
                    return "chute no longer listed"
                local = next((x for x in inputs.chutes if x.chute_id == c), None)
                await self._inventory.upsert_chute(chute_row_from_remote(remote, v, image, local))
                return f"version {remote.version[:8]}"
            case DeleteChute(chute_id=c):
                local = next((x for x in inputs.chutes if x.chute_id == c), None)
                await self._inventory.delete_chute(c)
                if local is not None:
                    await self._cluster.delete_code_configmap(c, local.version)
                return "deleted"
            case RemoveServer(server_id=s, reason=reason):
                for row in inputs.deployments:
                    if row.server_id == s:
                        await self._deployer.undeploy(row.deployment_id, reason)
                await self._inventory.delete_server(s)
                return "removed"
        raise AssertionError(f"unhandled reconcile action {action!r}")
