"""The planner's input: one consistent picture of chutes, servers, our deployments and the
failure ledger, independent of where the data came from.

The services layer maps database rows, validator replies and cluster state into these frozen
dataclasses; the planner never sees an adapter. Dataclasses (not pydantic) because the planner
reads their attributes hundreds of thousands of times per round at 2,000 chutes x 300 servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ChuteMetrics:
    """Validator metrics. The planner does not read them; the benchmark's community-fork
    baseline values chutes by them (`bench/simulate.py` `fork_gain`)."""

    total_compute_time: float = 0.0
    compute_multiplier: float = 1.0
    total_invocations: float = 0.0
    rate_limit_count: float = 0.0


@dataclass(frozen=True, slots=True)
class ChuteUtilization:
    """What `GET /chutes/utilization` says about one chute."""

    scalable: bool = True
    update_in_progress: bool = False
    # target - current network-wide; None when the validator did not say (treated as 1).
    scale_allowance: int | None = None
    utilization: float | None = None


@dataclass(frozen=True, slots=True)
class ChuteView:
    chute_id: str
    name: str
    validator: str
    gpu_count: int
    supported_gpus: frozenset[str]
    version: str = ""
    # The version the validator currently serves; a local row at another version is stale.
    remote_version: str | None = None
    tee: bool = False
    ban_reason: str | None = None
    preemptible: bool = True
    has_cords: bool = True
    chutes_version: str | None = None
    effective_compute_multiplier: float = 1.0
    # Factor of the multiplier that comes from a bounty (1.0 = no bounty); it decays after 2 h.
    bounty_boost: float = 1.0
    metrics: ChuteMetrics | None = None
    utilization: ChuteUtilization = field(default_factory=ChuteUtilization)
    # Network-wide instance count as the validator reports it (all miners, ours included).
    instance_count: int = 0
    # Open validator jobs for this chute (job ids); a job is placed before ordinary work.
    job_ids: tuple[str, ...] = ()
    # Expected minutes from creation to activation; None = a default by gpu_count.
    startup_minutes: float | None = None

    @property
    def at_remote_version(self) -> bool:
        return self.remote_version is None or self.remote_version == self.version


@dataclass(frozen=True, slots=True)
class GpuView:
    gpu_id: str
    verified: bool = True
    deployment_id: str | None = None


@dataclass(frozen=True, slots=True)
class ServerView:
    server_id: str
    name: str
    validator: str
    gpu_type: str
    hourly_cost: float  # $ per GPU per hour, as the operator declared it
    gpus: tuple[GpuView, ...]
    locked: bool = False
    is_tee: bool = False
    # Free disk on the node in GB; None = unknown (not checked).
    disk_free_gb: float | None = None

    def free_gpu_ids(self) -> list[str]:
        return [g.gpu_id for g in self.gpus if g.verified and g.deployment_id is None]


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment_id: str
    chute_id: str
    server_id: str
    gpu_ids: tuple[str, ...]
    created_at: datetime
    activated_at: datetime | None = None
    job_id: str | None = None
    preemptible: bool = True
    active: bool = False
    # The instance's current compute multiplier (from /miner/active_instances/), if known.
    compute_multiplier: float | None = None
    # The validator's instance id, set once the pod claimed its launch config: from then on the
    # validator counts it in `instance_count` and `scale_allowance`, active or not.
    instance_id: str | None = None

    @property
    def pending(self) -> bool:
        return not self.active

    @property
    def uncounted(self) -> bool:
        """Started by us but not yet an instance the validator counts."""
        return not self.active and self.instance_id is None


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One row of the failure ledger: a deployment's life. `ended_at` is None while it runs.
    `counted=False` marks an end that must never count as a failure (423, operator removal)."""

    deployment_id: str
    chute_id: str
    server_id: str
    gpu_type: str
    created_at: datetime
    ended_at: datetime | None
    reason: str = ""
    counted: bool = True
    # When it became active, if it ended after activating (the ledger keeps it past the end).
    activated_at: datetime | None = None
    # The operator cleared the back-off since (`counted` is then False too).
    forgiven: bool = False


@dataclass(frozen=True, slots=True)
class PreemptionRecord:
    """A preemption we already carried out (for the preemption budget)."""

    server_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PublicFootprint:
    """Our activated instances of public chutes on one validator and the GPUs they use: the
    validator launches private chutes only for miners above a footprint (`rules.py`)."""

    validator: str
    instances: int
    gpus: int


@dataclass(frozen=True)
class Snapshot:
    chutes: tuple[ChuteView, ...]
    servers: tuple[ServerView, ...]
    deployments: tuple[DeploymentView, ...] = ()
    failures: tuple[FailureRecord, ...] = ()
    # Chute ids the operator prefers; empty = no whitelist.
    whitelist: frozenset[str] = frozenset()
    recent_preemptions: tuple[PreemptionRecord, ...] = ()
    # (chute_id, server_id) preemptions proposed by the previous round (stabilisation).
    proposed_preemptions: frozenset[tuple[str, str]] = frozenset()
    # Per validator, as its own instance list says; a validator missing here is unknown.
    public_footprints: tuple[PublicFootprint, ...] = ()

    # Indexes built once; excluded from equality and repr.
    chute_by_id: Mapping[str, ChuteView] = field(init=False, repr=False, compare=False)
    server_by_id: Mapping[str, ServerView] = field(init=False, repr=False, compare=False)
    deployments_by_chute: Mapping[str, tuple[DeploymentView, ...]] = field(
        init=False, repr=False, compare=False
    )
    # chute_id -> (ours, pending non-job, uncounted non-job): the allowance asks per chute.
    _counts: Mapping[str, tuple[int, int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_chute: dict[str, list[DeploymentView]] = {}
        for d in self.deployments:
            by_chute.setdefault(d.chute_id, []).append(d)
        object.__setattr__(
            self, "chute_by_id", MappingProxyType({c.chute_id: c for c in self.chutes})
        )
        object.__setattr__(
            self, "server_by_id", MappingProxyType({s.server_id: s for s in self.servers})
        )
        object.__setattr__(
            self,
            "deployments_by_chute",
            MappingProxyType({k: tuple(v) for k, v in by_chute.items()}),
        )
        counts = {
            cid: (
                len(ds),
                sum(1 for d in ds if d.pending and d.job_id is None),
                sum(1 for d in ds if d.uncounted and d.job_id is None),
            )
            for cid, ds in by_chute.items()
        }
        object.__setattr__(self, "_counts", MappingProxyType(counts))

    def our_instances(self, chute_id: str) -> int:
        return self._counts.get(chute_id, (0, 0, 0))[0]

    def our_pending(self, chute_id: str) -> int:
        return self._counts.get(chute_id, (0, 0, 0))[1]

    def public_footprint(self, validator: str) -> PublicFootprint | None:
        """Our public footprint on `validator`, or None when its instance list is unknown."""
        for footprint in self.public_footprints:
            if footprint.validator == validator:
                return footprint
        return None

    def our_uncounted(self, chute_id: str) -> int:
        """Our deployments of the chute that the validator's counts do not include yet."""
        return self._counts.get(chute_id, (0, 0, 0))[2]
