"""Reconcile, pure: compare the database, Kubernetes and the validator and say what to fix.

`plan_reconcile(inputs, now, policy)` returns a `ReconcilePlan`: a list of actions, each with
its reason, plus the problems that limited it. It never acts on partial information: when any
listing it needs is missing (None), it plans no removal at all, only what the lists it has
prove. A plan that would remove more than `policy.max_removal_fraction` of the fleet is held
back too (a validator or API server that answers with nonsense must not empty a miner).

The caller must read Kubernetes and the validator BEFORE the database: a deployment row is
written before its Job and before its validator instance exists, so anything seen in the
cluster or at the validator is then guaranteed to have its row in the later database read.

Upstream behaviours changed on purpose (`docs/protocol.md#upstream-differences`):
- a missing validator instance gets a grace period instead of an immediate undeploy;
- an empty or failed pod scan never counts as "no pods" (R's mass-deletion risk);
- chute drift compares fields, not `str(set(...))` (whose order is not stable);
- an image patch applied by image sync is the expected image, so drift does not flap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from gepetto_core.models.cluster import ChuteJobView, LegacyDeploymentView, NodeView, ServiceView
from gepetto_core.models.inventory import Chute, Deployment, Server
from gepetto_core.models.validator import (
    RollingUpdate,
    ValidatorChute,
    ValidatorImage,
    ValidatorInstance,
)

EndKind = Literal["failure", "planned"]


@dataclass(frozen=True)
class ReconcilePolicy:
    stub_deadline: timedelta = timedelta(minutes=30)
    never_verified_deadline: timedelta = timedelta(hours=2)
    missing_instance_grace: timedelta = timedelta(minutes=5)
    max_removal_fraction: float = 0.5
    # below this many deployments the fraction guard is not meaningful
    removal_guard_minimum: int = 4


@dataclass(frozen=True)
class RemoteView:
    """What one validator says. A field is None when its listing failed."""

    instances: Sequence[ValidatorInstance] | None
    chutes: Sequence[ValidatorChute] | None
    images: Sequence[ValidatorImage] | None
    rolling_updates: Sequence[RollingUpdate] | None


@dataclass(frozen=True)
class ReconcileInputs:
    deployments: Sequence[Deployment]
    chutes: Sequence[Chute]
    servers: Sequence[Server]
    jobs: Sequence[ChuteJobView] | None
    legacy: Sequence[LegacyDeploymentView] | None
    services: Sequence[ServiceView] | None
    nodes: Sequence[NodeView] | None
    remote: Mapping[str, RemoteView]  # by validator hotkey
    # When each deployment's instance was first seen missing from a complete listing (kept by
    # the caller across passes). None: no history, the deployment's age stands in for it.
    missing_since: Mapping[str, datetime] | None = None


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetInstanceId:
    deployment_id: str
    instance_id: str
    reason: str


@dataclass(frozen=True)
class MirrorState:
    deployment_id: str
    verified: bool  # set verified_at now when True
    active: bool | None  # new value when it changed
    reason: str


@dataclass(frozen=True)
class RemoveDeployment:
    """Full undeploy: row, validator instance, Job and Service.

    `observed`: the removal rests on something seen to fail (a failed Job, a terminated pod, a
    deadline passed), not on something missing from a listing. Only removals for absence count
    towards the mass-removal guard: ten chutes that crash together are ten real failures, while
    ten deployments missing at once more likely mean a listing lied."""

    deployment_id: str
    reason: str
    end: EndKind
    observed: bool = False


@dataclass(frozen=True)
class PurgeInstance:
    validator: str
    chute_id: str
    instance_id: str
    reason: str


@dataclass(frozen=True)
class DeleteJob:
    deployment_id: str
    job_name: str
    reason: str


@dataclass(frozen=True)
class DeleteService:
    deployment_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class SaveChute:
    """Insert or update the local chute row from the validator's copy."""

    validator: str
    chute_id: str
    version: str
    image: str
    reason: str


@dataclass(frozen=True)
class DeleteChute:
    chute_id: str
    reason: str


@dataclass(frozen=True)
class RemoveServer:
    server_id: str
    reason: str


Action = (
    SetInstanceId
    | MirrorState
    | RemoveDeployment
    | PurgeInstance
    | DeleteJob
    | DeleteService
    | SaveChute
    | DeleteChute
    | RemoveServer
)
_DESTRUCTIVE = (
    RemoveDeployment,
    PurgeInstance,
    DeleteJob,
    DeleteService,
    DeleteChute,
    RemoveServer,
)


@dataclass(frozen=True)
class ReconcilePlan:
    actions: list[Action] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # False when a listing was missing or a guard held removals back
    complete: bool = True

    def of_type(self, kind: type[Action]) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def destructive(self) -> list[Action]:
        return [a for a in self.actions if isinstance(a, _DESTRUCTIVE)]


def expected_image(chute: ValidatorChute, images: Mapping[str, ValidatorImage]) -> str:
    """The image string the local row should hold: the image list's patched reference when the
    validator lists the chute's image, else the chute's own `image` field."""
    image = images.get(chute.image_id) if chute.image_id else None
    return image.pull_ref if image is not None else chute.image


def chute_differs(local: Chute, remote: ValidatorChute, image: str) -> list[str]:
    """Names of the documented fields that differ between the local row and the remote chute."""
    checks = {
        "version": (local.version, remote.version),
        "name": (local.name, remote.name),
        "image": (local.image, image),
        "code": (local.code, remote.code),
        "ref_str": (local.ref_str, remote.ref_str),
        "preemptible": (local.preemptible, remote.preemptible),
        "gpu_count": (local.gpu_count, remote.gpu_count),
        "chutes_version": (local.chutes_version, remote.chutes_version),
        "supported_gpus": (sorted(set(local.supported_gpus)), sorted(set(remote.supported_gpus))),
        "tee": (local.tee, remote.tee),
    }
    return [name for name, (a, b) in checks.items() if a != b]


def _age(d: Deployment, now: datetime) -> timedelta:
    return now - d.created_at if d.created_at else timedelta(0)


def _job_failure(job: ChuteJobView) -> str | None:
    """Why a Job is finished or broken, or None while it may still become healthy."""
    if job.status.failed > 0:
        return "job failed" + _pod_detail(job)
    if job.status.succeeded > 0:
        return "job exited" + _pod_detail(job)
    for pod in job.pods:
        if pod.state is not None and pod.state.state == "terminated":
            return "pod terminated" + _pod_detail(job)
    return None


def _pod_detail(job: ChuteJobView) -> str:
    for pod in job.pods:
        state = pod.state
        if state is not None and (state.reason or state.exit_code is not None):
            parts = [
                state.reason or "",
                f"exit {state.exit_code}" if state.exit_code is not None else "",
            ]
            return ": " + ", ".join(p for p in parts if p)
    return ""


def plan_reconcile(
    inputs: ReconcileInputs, now: datetime, policy: ReconcilePolicy | None = None
) -> ReconcilePlan:
    policy = policy or ReconcilePolicy()
    actions: list[Action] = []
    problems: list[str] = []

    cluster_known = inputs.jobs is not None and inputs.legacy is not None
    if inputs.jobs is None:
        problems.append("Kubernetes jobs could not be listed")
    if inputs.legacy is None:
        problems.append("legacy Kubernetes deployments could not be listed")
    if inputs.services is None:
        problems.append("Kubernetes services could not be listed")
    if inputs.nodes is None:
        problems.append("Kubernetes nodes could not be listed")
    for hotkey, view in inputs.remote.items():
        for name in ("instances", "chutes", "images", "rolling_updates"):
            if getattr(view, name) is None:
                problems.append(f"validator {hotkey[:8]}: {name} unavailable")

    jobs = {j.deployment_id: j for j in inputs.jobs or () if j.deployment_id}
    legacy_ids = {d.deployment_id for d in inputs.legacy or () if d.deployment_id}
    local_chutes = {c.chute_id: c for c in inputs.chutes}

    tracked_instances: set[str] = set()
    tracked_configs: set[str] = set()
    tracked_deployments: set[str] = set()

    for d in inputs.deployments:
        tracked_deployments.add(d.deployment_id)
        if d.config_id:
            tracked_configs.add(d.config_id)
        remote = inputs.remote.get(d.validator)
        instances = remote.instances if remote else None
        by_id = {i.instance_id: i for i in instances or ()}
        instance_id = d.instance_id

        # 1. learn the instance id from the launch config
        if instances is not None and d.config_id and not instance_id:
            match = next((i for i in instances if i.config_id == d.config_id), None)
            if match is not None:
                instance_id = match.instance_id
                actions.append(
                    SetInstanceId(d.deployment_id, instance_id, "matched by launch config id")
                )
        if instance_id:
            tracked_instances.add(instance_id)

        # 2. mirror the validator's view
        live = by_id.get(instance_id) if instance_id else None
        if live is not None:
            newly_verified = d.verified_at is None and (
                live.last_verified_at is not None or live.verified
            )
            new_active = live.active if live.active != d.active else None
            if newly_verified or new_active is not None:
                actions.append(
                    MirrorState(d.deployment_id, newly_verified, new_active, "validator state")
                )

        missing_for = (
            None
            if inputs.missing_since is None
            else now - inputs.missing_since.get(d.deployment_id, now)
        )
        removal = _removal_reason(
            d,
            instance_id,
            live,
            instances,
            jobs,
            legacy_ids,
            cluster_known,
            remote,
            local_chutes,
            now,
            policy,
            missing_for,
        )
        if removal is not None:
            reason, end, observed = removal
            actions.append(RemoveDeployment(d.deployment_id, reason, end, observed))

    # validator instances nothing tracks
    for hotkey, view in inputs.remote.items():
        for inst in view.instances or ():
            if inst.instance_id in tracked_instances:
                continue
            if inst.config_id and inst.config_id in tracked_configs:
                continue
            actions.append(
                PurgeInstance(hotkey, inst.chute_id, inst.instance_id, "instance not tracked")
            )

    # Jobs and Services nothing tracks
    for job in inputs.jobs or ():
        if job.deployment_id and job.deployment_id not in tracked_deployments and not job.deleting:
            actions.append(DeleteJob(job.deployment_id, job.name, "job not tracked"))
    for svc in inputs.services or ():
        if (
            svc.deployment_id
            and svc.deployment_id not in tracked_deployments
            and svc.deployment_id not in jobs
        ):
            actions.append(DeleteService(svc.deployment_id, svc.name, "service without deployment"))

    actions += _chute_actions(inputs, local_chutes)
    actions += _server_actions(inputs, problems)

    return _guard(actions, problems, inputs, policy)


def missing_instances(inputs: ReconcileInputs) -> set[str]:
    """Deployments whose instance a complete listing of their validator does not contain (by
    instance id, nor by launch config id). The caller keeps when each was first seen so."""
    missing: set[str] = set()
    for d in inputs.deployments:
        remote = inputs.remote.get(d.validator)
        if not d.instance_id or remote is None or remote.instances is None:
            continue
        listed = any(
            i.instance_id == d.instance_id or (d.config_id and i.config_id == d.config_id)
            for i in remote.instances
        )
        if not listed:
            missing.add(d.deployment_id)
    return missing


def _removal_reason(
    d: Deployment,
    instance_id: str | None,
    live: ValidatorInstance | None,
    instances: Sequence[ValidatorInstance] | None,
    jobs: Mapping[str, ChuteJobView],
    legacy_ids: set[str],
    cluster_known: bool,
    remote: RemoteView | None,
    local_chutes: Mapping[str, Chute],
    now: datetime,
    policy: ReconcilePolicy,
    missing_for: timedelta | None = None,
) -> tuple[str, EndKind, bool] | None:
    """(reason, end, observed) when the deployment must go. The missing-instance grace runs
    from when the instance was first seen missing (`missing_for`), not from the deployment's
    creation: one listing that leaves it out by mistake (a `NO_ITEMS` answer) removes nothing."""
    age = _age(d, now)
    if cluster_known and d.deployment_id not in legacy_ids:
        job = jobs.get(d.deployment_id)
        if job is None:
            if d.stub and age < policy.stub_deadline:
                return None  # still being deployed
            if d.stub:
                # Its Job was never made: gepetto (or the cluster) failed, not the chute, so
                # this must not feed the chute's back-off.
                stale = f"stub older than {_minutes(policy.stub_deadline)} with no job"
                return (stale, "planned", True)
            return ("job is gone from the cluster", "failure", False)
        failure = _job_failure(job)
        if failure:
            return (failure, "failure", True)
    if (
        instances is not None
        and instance_id
        and live is None
        and (age if missing_for is None else missing_for) >= policy.missing_instance_grace
    ):
        return ("validator no longer lists the instance", "failure", False)
    verified = d.verified_at is not None or (
        live is not None and (live.verified or live.last_verified_at is not None)
    )
    if not verified and age >= policy.never_verified_deadline:
        return (f"not verified after {_minutes(policy.never_verified_deadline)}", "failure", True)
    if remote is not None and remote.chutes is not None and remote.rolling_updates is not None:
        in_update = any(u.chute_id == d.chute_id for u in remote.rolling_updates)
        remote_chute = next((c for c in remote.chutes if c.chute_id == d.chute_id), None)
        if remote_chute is None and not in_update:
            return ("chute was removed by the validator", "planned", False)
        moved = remote_chute is not None and remote_chute.version != d.version
        if moved and remote_chute is not None and not in_update and not d.job_id:
            return (f"chute moved to version {remote_chute.version[:8]}", "planned", False)
    return None


def _chute_actions(inputs: ReconcileInputs, local: Mapping[str, Chute]) -> list[Action]:
    actions: list[Action] = []
    remote_ids: set[str] = set()
    all_known = True
    for hotkey, view in inputs.remote.items():
        if view.chutes is None or view.images is None or view.rolling_updates is None:
            all_known = False
            continue
        images = {i.image_id: i for i in view.images}
        for chute in view.chutes:
            remote_ids.add(chute.chute_id)
            image = expected_image(chute, images)
            mine = local.get(chute.chute_id)
            if mine is None:
                actions.append(SaveChute(hotkey, chute.chute_id, chute.version, image, "new chute"))
                continue
            changed = chute_differs(mine, chute, image)
            if changed:
                actions.append(
                    SaveChute(
                        hotkey,
                        chute.chute_id,
                        chute.version,
                        image,
                        f"changed: {', '.join(changed)}",
                    )
                )
    if all_known and inputs.remote:
        updating = {
            u.chute_id for view in inputs.remote.values() for u in view.rolling_updates or ()
        }
        for chute_id, row in local.items():
            gone = chute_id not in remote_ids and chute_id not in updating
            if gone and row.validator in inputs.remote:
                actions.append(DeleteChute(chute_id, "chute was removed by the validator"))
    return actions


def _server_actions(inputs: ReconcileInputs, problems: list[str]) -> list[Action]:
    if inputs.nodes is None:
        return []
    node_uids = {n.server_id for n in inputs.nodes}
    if not node_uids and inputs.servers:
        problems.append("the cluster lists no nodes at all; not removing any server")
        return []
    return [
        RemoveServer(s.server_id, f"node {s.name} is gone from the cluster")
        for s in inputs.servers
        if s.server_id not in node_uids
    ]


def _guard(
    actions: list[Action], problems: list[str], inputs: ReconcileInputs, policy: ReconcilePolicy
) -> ReconcilePlan:
    destructive = [a for a in actions if isinstance(a, _DESTRUCTIVE)]
    kept: list[Action] = [a for a in actions if not isinstance(a, _DESTRUCTIVE)]
    if problems and destructive:
        problems = [*problems, f"held back {len(destructive)} removal(s): information incomplete"]
        return ReconcilePlan(kept, problems, complete=False)
    removals = sum(isinstance(a, RemoveDeployment) and not a.observed for a in actions)
    fleet = len(inputs.deployments)
    if fleet >= policy.removal_guard_minimum and removals > policy.max_removal_fraction * fleet:
        limit = f"{policy.max_removal_fraction:.0%}"
        problems = [
            *problems,
            f"held back {len(destructive)} removal(s): {removals} of {fleet} deployments "
            f"would go at once for missing from a listing (limit {limit}); "
            "run recycle --force after checking",
        ]
        return ReconcilePlan(kept, problems, complete=False)
    return ReconcilePlan(actions, problems, complete=not problems)


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


def chute_row_from_remote(
    remote: ValidatorChute, validator: str, image: str, local: Chute | None = None
) -> Chute:
    """The local `chutes` row for a validator's chute. An operator's ban survives updates (the
    official miner clears it on every chute_updated, silently lifting the operator's decision)."""
    return Chute(
        chute_id=remote.chute_id,
        validator=validator,
        name=remote.name,
        image=image,
        code=remote.code,
        filename=remote.filename,
        ref_str=remote.ref_str,
        version=remote.version,
        supported_gpus=list(remote.supported_gpus),
        gpu_count=remote.gpu_count,
        chutes_version=remote.chutes_version,
        preemptible=remote.preemptible,
        tee=remote.tee,
        ban_reason=local.ban_reason if local else None,
    )
