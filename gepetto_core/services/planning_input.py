"""The planner's input from runtime data: inventory rows + validator snapshots + the failure
ledger -> `scheduling.Snapshot`, and the planner's knobs from Settings -> `PlanPolicy`.

`build_snapshot` and `plan_policy` are pure; `load_snapshot` only gathers what they need. The
command layer (`scales`, `chutes`, `why`) and the autoscaler loop share these, so both reason
about the same picture of the fleet.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gepetto_core.config import Settings
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.models.validator import ChuteMetrics as ValidatorMetrics
from gepetto_core.models.validator import ChuteUtilization as ValidatorUtilization
from gepetto_core.models.validator import ValidatorChute
from gepetto_core.scheduling import (
    BackoffPolicy,
    ChuteMetrics,
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    PlanPolicy,
    PublicFootprint,
    ServerView,
    Snapshot,
)
from gepetto_core.scheduling.backoff import refused_jobs
from gepetto_core.services.ledger import load_failure_records
from gepetto_core.services.ports import Inventory, StateStore
from gepetto_core.services.sync import ListName, ValidatorSnapshot

# Validator job states that no longer want a miner.
_CLOSED_JOB_STATES = frozenset({"complete", "completed", "error", "cancelled", "running"})

# The validator lists the planner reads; their age is the age of a planning snapshot.
PLANNING_LISTS: tuple[ListName, ...] = (
    ListName.CHUTES,
    ListName.UTILIZATION,
    ListName.INSTANCES,
)


def plan_policy(settings: Settings) -> PlanPolicy:
    """The planner's knobs from Settings (failure back-off, limits, disk reserve, GPU cost weight);
    everything else at the pure policy's defaults."""
    backoff = BackoffPolicy(
        failure_window=timedelta(minutes=settings.failure_window_minutes),
        base_cooldown=timedelta(minutes=settings.failure_cooldown_minutes),
        max_cooldown=timedelta(minutes=settings.failure_cooldown_max_minutes),
        fenced_server_probes=settings.failure_server_probes,
    )
    return PlanPolicy(
        backoff=backoff,
        max_deploys_per_round=settings.max_deploys_per_round,
        max_pulls_per_server=settings.max_pulls_per_server,
        min_disk_gb=float(settings.disk_reserve_gb),
        cost_weight=settings.cost_weight,
    )


def server_gpu_type(server: Server, gpus: Sequence[Gpu]) -> str:
    """The server's GPU type: the most common model among its GPUs, else its node label."""
    counts = Counter(g.model_short_ref for g in gpus)
    if counts:
        return counts.most_common(1)[0][0]
    label = server.labels.get("gpu-short-ref")
    return str(label) if label else "unknown"


def observed_startup_minutes(
    deployments: Iterable[Deployment], ended: Iterable[FailureRecord] = ()
) -> dict[str, float]:
    """Per chute, the median minutes from creation to activation of the deployments we hold
    and of those the ledger saw end after activating. Without it the planner assumes a
    per-size default, but a 70B image starts far slower than a small one, and the start-up
    enters every value: its charge, what a failed start costs, a preemption's pay-back."""
    samples: dict[str, list[float]] = {}
    lives = [(d.chute_id, d.created_at, d.activated_at) for d in deployments]
    lives += [(r.chute_id, r.created_at, r.activated_at) for r in ended if r.ended_at is not None]
    for chute_id, created_at, activated_at in lives:
        if created_at is None or activated_at is None or activated_at < created_at:
            continue
        minutes = (activated_at - created_at).total_seconds() / 60.0
        samples.setdefault(chute_id, []).append(minutes)
    return {chute_id: statistics.median(m) for chute_id, m in samples.items()}


def _chute_view(
    chute: Chute,
    remote: ValidatorSnapshot | None,
    startup_minutes: float | None = None,
    refused_jobs: frozenset[str] = frozenset(),
    removal: str | None = None,
) -> ChuteView:
    """`removal`: why the chute is to be removed once its deployments are; it is then never
    scaled, as if banned (its deployments stay in the picture until they go)."""
    rc = remote.chutes.items.get(chute.chute_id) if remote else None
    util = remote.utilization.items.get(chute.chute_id) if remote else None
    metrics = remote.metrics.items.get(chute.chute_id) if remote else None
    jobs = _open_jobs(chute.chute_id, remote, refused_jobs) if remote else ()
    if util is not None:
        instance_count = util.total_instance_count or util.instance_count
    else:
        instance_count = metrics.instance_count if metrics else 0
    return ChuteView(
        chute_id=chute.chute_id,
        name=chute.name or chute.chute_id,
        validator=chute.validator,
        gpu_count=chute.gpu_count,
        supported_gpus=frozenset(chute.supported_gpus),
        version=chute.version,
        remote_version=rc.version if rc else None,
        tee=chute.tee,
        ban_reason=chute.ban_reason or (f"to be removed: {removal}" if removal else None),
        preemptible=chute.preemptible,
        # Without the validator's copy we cannot tell; the zero multiplier below rejects it.
        has_cords=bool(rc.cords) if rc else True,
        chutes_version=chute.chutes_version,
        effective_compute_multiplier=rc.effective_compute_multiplier if rc else 0.0,
        bounty_boost=float(rc.compute_multiplier_factors.get("bounty_boost", 1.0)) if rc else 1.0,
        metrics=_chute_metrics(metrics) if metrics else None,
        utilization=(
            ChuteUtilization(
                scalable=util.scalable and _private_chute_wanted(rc, util),
                update_in_progress=util.update_in_progress,
                scale_allowance=util.scale_allowance,
                utilization=util.utilization_1h,
            )
            if util
            else ChuteUtilization()
        ),
        instance_count=instance_count,
        job_ids=jobs,
        startup_minutes=startup_minutes,
    )


def _open_jobs(
    chute_id: str, remote: ValidatorSnapshot, refused: frozenset[str]
) -> tuple[str, ...]:
    """The chute's jobs nobody has taken yet, still open, and not refused to us before (the
    validator refuses a job we already tried)."""
    return tuple(
        j.job_id
        for j in remote.jobs.items.values()
        if j.chute_id == chute_id
        and j.instance_id is None
        and (j.status or "").lower() not in _CLOSED_JOB_STATES
        and j.job_id not in refused
    )


def _chute_metrics(metrics: ValidatorMetrics) -> ChuteMetrics:
    return ChuteMetrics(
        total_compute_time=metrics.total_compute_time,
        compute_multiplier=metrics.compute_multiplier,
        total_invocations=float(metrics.total_invocations),
        rate_limit_count=float(metrics.rate_limit_count),
    )


def _private_chute_wanted(rc: ValidatorChute | None, util: ValidatorUtilization) -> bool:
    """The validator refuses a private chute (423) while it has no active instance and no
    bounty ("no pending requests"), whatever its capacity says: don't plan one then."""
    if rc is None or rc.public:
        return True
    has_bounty = "bounty_boost" in rc.compute_multiplier_factors
    return bool(util.active_instance_count) or has_bounty


def public_footprint(validator: str, remote: ValidatorSnapshot) -> PublicFootprint | None:
    """Our activated instances of public chutes on one validator, and their GPUs, as the
    validator counts them: from its list of our instances (None until that list is known)."""
    if not remote.instances.known:
        return None
    instances = gpus = 0
    for instance in remote.instances.items.values():
        chute = remote.chutes.items.get(instance.chute_id)
        if instance.active and chute is not None and chute.public:
            instances += 1
            gpus += chute.gpu_count
    return PublicFootprint(validator, instances, gpus)


def deploy_views(chute: Chute, server: Server, gpus: Sequence[Gpu]) -> tuple[ChuteView, ServerView]:
    """The planner's views of one chute and one server (with its GPUs), from the inventory
    alone: what `rules.deploy_rejection` needs to guard a deploy."""
    return _chute_view(chute, None), _server_view(server, gpus, None)


def _server_view(server: Server, gpus: Sequence[Gpu], disk_free_gb: float | None) -> ServerView:
    return ServerView(
        server_id=server.server_id,
        name=server.name,
        validator=server.validator,
        gpu_type=server_gpu_type(server, gpus),
        hourly_cost=server.hourly_cost,
        gpus=tuple(
            GpuView(gpu_id=g.gpu_id, verified=g.verified, deployment_id=g.deployment_id)
            for g in gpus
        ),
        locked=server.locked,
        is_tee=server.is_tee,
        disk_free_gb=disk_free_gb,
    )


def _deployment_view(
    d: Deployment, gpu_ids: Sequence[str], multipliers: Mapping[str, float], now: datetime
) -> DeploymentView:
    return DeploymentView(
        deployment_id=d.deployment_id,
        chute_id=d.chute_id,
        server_id=d.server_id,
        gpu_ids=tuple(gpu_ids),
        created_at=d.created_at or now,
        activated_at=d.activated_at,
        job_id=d.job_id,
        preemptible=d.preemptible,
        active=d.active,
        compute_multiplier=multipliers.get(d.instance_id) if d.instance_id else None,
        instance_id=d.instance_id,
    )


def build_snapshot(
    *,
    chutes: Iterable[Chute],
    servers: Iterable[Server],
    gpus: Iterable[Gpu],
    deployments: Iterable[Deployment],
    remote: Mapping[str, ValidatorSnapshot],
    failures: Iterable[FailureRecord] = (),
    disk_free_gb: Mapping[str, float] | None = None,
    whitelist: Iterable[str] = (),
    chute_removals: Mapping[str, str] | None = None,
    now: datetime,
) -> Snapshot:
    """One consistent planning picture. Pure: the caller fetched everything."""
    removals = chute_removals or {}
    gpus_by_server: dict[str, list[Gpu]] = {}
    gpus_by_deployment: dict[str, list[str]] = {}
    for g in gpus:
        gpus_by_server.setdefault(g.server_id, []).append(g)
        if g.deployment_id:
            gpus_by_deployment.setdefault(g.deployment_id, []).append(g.gpu_id)
    multipliers = {
        i.instance_id: i.compute_multiplier
        for snap in remote.values()
        for i in snap.active_instances.items.values()
    }
    disk = disk_free_gb or {}
    deployments = list(deployments)
    failures = tuple(failures)
    startup = observed_startup_minutes(deployments, failures)
    refused = refused_jobs(failures)
    return Snapshot(
        chutes=tuple(
            _chute_view(
                c,
                remote.get(c.validator),
                startup.get(c.chute_id),
                refused,
                removals.get(c.chute_id),
            )
            for c in chutes
        ),
        servers=tuple(
            _server_view(s, gpus_by_server.get(s.server_id, []), disk.get(s.server_id))
            for s in servers
        ),
        deployments=tuple(
            _deployment_view(d, gpus_by_deployment.get(d.deployment_id, []), multipliers, now)
            for d in deployments
        ),
        failures=failures,
        whitelist=frozenset(whitelist),
        public_footprints=tuple(
            footprint
            for validator, snap in remote.items()
            if (footprint := public_footprint(validator, snap)) is not None
        ),
    )


def data_age(
    snapshots: Iterable[ValidatorSnapshot],
    now: float,
    lists: Sequence[ListName] = PLANNING_LISTS,
) -> float | None:
    """Age in seconds of the oldest list behind a view; None if any was never fetched."""
    oldest = 0.0
    seen = False
    for snap in snapshots:
        for name in lists:
            age = snap.list_state(name).age(now)
            if age is None:
                return None
            oldest = max(oldest, age)
            seen = True
    return oldest if seen else None


@dataclass(frozen=True)
class PlanningInput:
    snapshot: Snapshot
    remote: Mapping[str, ValidatorSnapshot]
    chutes: list[Chute]
    servers: list[Server]
    gpus: list[Gpu]
    deployments: list[Deployment]


async def load_snapshot(
    inventory: Inventory,
    state: StateStore,
    remote: Mapping[str, ValidatorSnapshot],
    now: datetime,
    *,
    ledger_days: float = 7.0,
    disk_free_gb: Mapping[str, float] | None = None,
) -> PlanningInput:
    """Read the inventory and the ledger, then map them with the given validator snapshots."""
    chutes = await inventory.list_chutes()
    servers = await inventory.list_servers()
    gpus = await inventory.list_gpus()
    deployments = await inventory.list_deployments()
    failures = await load_failure_records(state, now - timedelta(days=ledger_days))
    chute_removals = await state.list_chute_removals()
    snapshot = build_snapshot(
        chutes=chutes,
        servers=servers,
        gpus=gpus,
        deployments=deployments,
        remote=remote,
        failures=failures,
        disk_free_gb=disk_free_gb,
        chute_removals=chute_removals,
        now=now,
    )
    return PlanningInput(snapshot, remote, chutes, servers, gpus, deployments)
