"""Reconcile, pure: compare the database, Kubernetes and the validator and say what to fix.

`plan_reconcile(inputs, now, policy)` returns a `ReconcilePlan` (`reconcile_actions.py`): a list
of actions, each with its reason, plus the problems that limited it. It never acts on partial
information: when any listing it needs is missing (None), it plans no removal at all, only what
the lists it has prove. A plan that would remove more than `policy.max_removal_fraction` of the
fleet is held back too (a validator or API server that answers with nonsense must not empty a
miner).

The caller must read Kubernetes and the validator BEFORE the database: a deployment row is
written before its Job and before its validator instance exists, so anything seen in the
cluster or at the validator is then guaranteed to have its row in the later database read.

Upstream behaviours changed on purpose (`docs/protocol.md#upstream-differences`):
- a missing validator instance gets a grace period instead of an immediate undeploy;
- an empty or failed pod scan never counts as "no pods" (R's mass-deletion risk);
- chute drift compares fields, and an image patched by image sync is expected
  (`chute_drift.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gepetto_core.models.cluster import ChuteJobView, LegacyDeploymentView, NodeView, ServiceView
from gepetto_core.models.inventory import Chute, Deployment, Server
from gepetto_core.models.validator import (
    RollingUpdate,
    ValidatorChute,
    ValidatorImage,
    ValidatorInstance,
)
from gepetto_core.scheduling.chute_drift import chute_differs, expected_image
from gepetto_core.scheduling.reconcile_actions import (
    DESTRUCTIVE,
    Action,
    DeleteChute,
    DeleteJob,
    DeleteService,
    EndKind,
    MirrorState,
    PurgeInstance,
    ReconcilePlan,
    RemoveDeployment,
    RemoveServer,
    SaveChute,
    SetInstanceId,
)
from gepetto_core.scheduling.reconcile_clusters import guard_each_cluster, spare_unknown_clusters


@dataclass(frozen=True)
class ReconcilePolicy:
    stub_deadline: timedelta = timedelta(minutes=30)
    never_verified_deadline: timedelta = timedelta(hours=2)
    missing_instance_grace: timedelta = timedelta(minutes=5)
    max_removal_fraction: float = 0.5
    # below this many deployments the fraction guard is not meaningful
    removal_guard_minimum: int = 4
    # the same for one cluster (multi-cluster layout): a cluster with 2 deployments that
    # loses both is held back, a lone deployment whose Job is gone is removed as before
    cluster_guard_minimum: int = 2


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
    # Multi-cluster layout: the servers whose cluster could not be read (server id -> reason).
    # The lists above hold the other clusters' objects; what is on these is unknown, never
    # empty (`reconcile_clusters.py`).
    unknown_servers: Mapping[str, str] = field(default_factory=dict)
    # Multi-cluster layout: each server is its own cluster, so the mass-removal guard also
    # counts per server. False in the single layout (one cluster for the fleet).
    cluster_per_server: bool = False
    # Removal requests (id -> why): servers the operator deleted and chutes the validator
    # deleted that could not go at once (a deferred undeploy; for a server, also a validator
    # that did not answer its deregistration). Reconcile finishes them.
    server_removals: Mapping[str, str] = field(default_factory=dict)
    chute_removals: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterListing:
    """What Kubernetes says about our deployments. `known`: both Job and legacy listings came
    back, so a deployment missing from them is really gone."""

    jobs: Mapping[str, ChuteJobView]  # by deployment id
    legacy_ids: frozenset[str]
    known: bool


@dataclass(frozen=True)
class ValidatorSight:
    """What a deployment's validator says about its instance."""

    remote: RemoteView | None
    instances: Sequence[ValidatorInstance] | None  # None: the listing failed
    instance_id: str | None  # the row's, or learnt from the launch config in this pass
    live: ValidatorInstance | None  # the listed instance, if any
    # How long the instance has been missing from complete listings (None: no history).
    missing_for: timedelta | None


@dataclass
class Tracked:
    """What our deployment rows account for; anything else listed is an orphan."""

    instances: set[str] = field(default_factory=set)
    configs: set[str] = field(default_factory=set)
    deployments: set[str] = field(default_factory=set)


def plan_reconcile(
    inputs: ReconcileInputs, now: datetime, policy: ReconcilePolicy | None = None
) -> ReconcilePlan:
    policy = policy or ReconcilePolicy()
    problems = _listing_problems(inputs)
    cluster = ClusterListing(
        jobs={j.deployment_id: j for j in inputs.jobs or () if j.deployment_id},
        legacy_ids=frozenset(d.deployment_id for d in inputs.legacy or () if d.deployment_id),
        known=inputs.jobs is not None and inputs.legacy is not None,
    )
    tracked = Tracked()
    actions: list[Action] = []
    for d in inputs.deployments:
        actions += _deployment_actions(d, inputs, cluster, tracked, now, policy)
    actions += _untracked_instances(inputs, tracked)
    actions += _untracked_cluster_objects(inputs, tracked, cluster)
    actions += _chute_actions(inputs, {c.chute_id: c for c in inputs.chutes})
    actions += _server_actions(inputs, problems)
    actions, unknown = spare_unknown_clusters(actions, inputs)
    listed = cluster.jobs.keys() | cluster.legacy_ids
    actions, held = guard_each_cluster(actions, inputs, listed, policy)
    plan = _guard(actions, problems, inputs, policy)
    if not unknown and not held:
        return plan
    return ReconcilePlan(plan.actions, [*plan.problems, *unknown, *held], complete=False)


def _listing_problems(inputs: ReconcileInputs) -> list[str]:
    problems: list[str] = []
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
    return problems


def _deployment_actions(
    d: Deployment,
    inputs: ReconcileInputs,
    cluster: ClusterListing,
    tracked: Tracked,
    now: datetime,
    policy: ReconcilePolicy,
) -> list[Action]:
    """For one deployment row: learn its instance id, mirror the validator's state, and remove
    it when it must go. Records what it tracks in `tracked`."""
    actions: list[Action] = []
    tracked.deployments.add(d.deployment_id)
    if d.config_id:
        tracked.configs.add(d.config_id)
    remote = inputs.remote.get(d.validator)
    instances = remote.instances if remote else None
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
        tracked.instances.add(instance_id)
    # 2. mirror the validator's view
    by_id = {i.instance_id: i for i in instances or ()}
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
    # 3. remove it when it must go
    missing_for = (
        None
        if inputs.missing_since is None
        else now - inputs.missing_since.get(d.deployment_id, now)
    )
    sight = ValidatorSight(remote, instances, instance_id, live, missing_for)
    removal = _removal(d, sight, cluster, now, policy)
    if removal is not None:
        actions.append(removal)
    return actions


def _untracked_instances(inputs: ReconcileInputs, tracked: Tracked) -> list[Action]:
    """Validator instances nothing tracks (by instance id nor by launch config)."""
    actions: list[Action] = []
    for hotkey, view in inputs.remote.items():
        for inst in view.instances or ():
            if inst.instance_id in tracked.instances:
                continue
            if inst.config_id and inst.config_id in tracked.configs:
                continue
            actions.append(
                PurgeInstance(hotkey, inst.chute_id, inst.instance_id, "instance not tracked")
            )
    return actions


def _untracked_cluster_objects(
    inputs: ReconcileInputs, tracked: Tracked, cluster: ClusterListing
) -> list[Action]:
    """Jobs and Services nothing tracks."""
    actions: list[Action] = []
    for job in inputs.jobs or ():
        if job.deployment_id and job.deployment_id not in tracked.deployments and not job.deleting:
            actions.append(DeleteJob(job.deployment_id, job.name, "job not tracked"))
    for svc in inputs.services or ():
        if (
            svc.deployment_id
            and svc.deployment_id not in tracked.deployments
            and svc.deployment_id not in cluster.jobs
        ):
            actions.append(DeleteService(svc.deployment_id, svc.name, "service without deployment"))
    return actions


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


def _removal(
    d: Deployment,
    sight: ValidatorSight,
    cluster: ClusterListing,
    now: datetime,
    policy: ReconcilePolicy,
) -> RemoveDeployment | None:
    """The removal of the deployment when it must go, in rule order: its Job, its validator
    instance, its verification, its chute."""
    age = _age(d, now)
    if _still_deploying(d, cluster, age, policy):
        return None
    for rule in (
        _cluster_removal(d, cluster, age, policy),
        _instance_removal(d, sight, age, policy),
        _chute_removal(d, sight),
    ):
        if rule is not None:
            reason, end, observed = rule
            return RemoveDeployment(d.deployment_id, reason, end, observed)
    return None


# (reason, end, observed): see `RemoveDeployment`.
Removal = tuple[str, EndKind, bool]


def _still_deploying(
    d: Deployment, cluster: ClusterListing, age: timedelta, policy: ReconcilePolicy
) -> bool:
    """A stub whose Job is not made yet, within its deadline: nothing else is judged."""
    in_cluster_view = cluster.known and d.deployment_id not in cluster.legacy_ids
    no_job = d.deployment_id not in cluster.jobs
    return in_cluster_view and no_job and d.stub and age < policy.stub_deadline


def _cluster_removal(
    d: Deployment, cluster: ClusterListing, age: timedelta, policy: ReconcilePolicy
) -> Removal | None:
    """Its Job is gone, or finished, or broken."""
    if not cluster.known or d.deployment_id in cluster.legacy_ids:
        return None
    job = cluster.jobs.get(d.deployment_id)
    if job is None:
        if d.stub:  # older than its deadline (see `_still_deploying`)
            # Its Job was never made: gepetto (or the cluster) failed, not the chute, so
            # this must not feed the chute's back-off.
            stale = f"stub older than {_minutes(policy.stub_deadline)} with no job"
            return (stale, "planned", True)
        return ("job is gone from the cluster", "failure", False)
    failure = _job_failure(job)
    if failure:
        return (failure, "failure", True)
    return None


def _instance_removal(
    d: Deployment, sight: ValidatorSight, age: timedelta, policy: ReconcilePolicy
) -> Removal | None:
    """Its instance is no longer listed, or was never verified. The missing-instance grace runs
    from when the instance was first seen missing (`missing_for`), not from the deployment's
    creation: one listing that leaves it out by mistake (a `NO_ITEMS` answer) removes nothing."""
    live = sight.live
    missing_for = age if sight.missing_for is None else sight.missing_for
    if (
        sight.instances is not None
        and sight.instance_id
        and live is None
        and missing_for >= policy.missing_instance_grace
    ):
        return ("validator no longer lists the instance", "failure", False)
    verified = d.verified_at is not None or (
        live is not None and (live.verified or live.last_verified_at is not None)
    )
    if not verified and age >= policy.never_verified_deadline:
        return (f"not verified after {_minutes(policy.never_verified_deadline)}", "failure", True)
    return None


def _chute_removal(d: Deployment, sight: ValidatorSight) -> Removal | None:
    """Its chute was removed by the validator, or moved to another version (jobs excepted)."""
    remote = sight.remote
    if remote is None or remote.chutes is None or remote.rolling_updates is None:
        return None
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
            if gone and row.validator in inputs.remote and chute_id not in inputs.chute_removals:
                actions.append(DeleteChute(chute_id, "chute was removed by the validator"))
    return actions + [
        DeleteChute(chute_id, reason)
        for chute_id, reason in inputs.chute_removals.items()
        if chute_id in local
    ]


def _server_actions(inputs: ReconcileInputs, problems: list[str]) -> list[Action]:
    # a server whose cluster was not read is not judged (`reconcile_clusters.py`)
    servers = [s for s in inputs.servers if s.server_id not in inputs.unknown_servers]
    requested = inputs.server_removals
    actions: list[Action] = [
        RemoveServer(s.server_id, requested[s.server_id])
        for s in servers
        if s.server_id in requested
    ]
    if inputs.nodes is None:
        return actions
    node_uids = {n.server_id for n in inputs.nodes}
    if not node_uids and servers:
        problems.append("the cluster lists no nodes at all; not removing any server")
        return actions
    return actions + [
        RemoveServer(s.server_id, f"node {s.name} is gone from the cluster")
        for s in servers
        if s.server_id not in node_uids and s.server_id not in requested
    ]


def _guard(
    actions: list[Action], problems: list[str], inputs: ReconcileInputs, policy: ReconcilePolicy
) -> ReconcilePlan:
    destructive = [a for a in actions if isinstance(a, DESTRUCTIVE)]
    kept: list[Action] = [a for a in actions if not isinstance(a, DESTRUCTIVE)]
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
