"""Wire models of the validator's miner-facing API (`docs/protocol.md#read-endpoints`).

Every model tolerates unknown fields (``extra="allow"``: the validator adds columns over time and
a newer field must never break a sync) and fills defaults for fields an older validator lacks.
Models are frozen: a snapshot built from them can be shared between tasks without copying.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class NodeSelector(_Wire):
    gpu_count: int = 1
    min_vram_gb_per_gpu: int = 16
    include: list[str] | None = None
    exclude: list[str] | None = None
    supported_gpus: list[str] = Field(default_factory=list)
    compute_multiplier: float | None = None


class ValidatorChute(_Wire):
    chute_id: str
    name: str = ""
    image: str = ""
    image_id: str | None = None
    public: bool = True
    code: str = ""
    filename: str = ""
    ref_str: str = ""
    version: str
    chutes_version: str | None = None
    cords: list[dict[str, Any]] = Field(default_factory=list)
    jobs: list[dict[str, Any]] | None = None
    node_selector: NodeSelector = Field(default_factory=NodeSelector)
    supported_gpus: list[str] = Field(default_factory=list)
    preemptible: bool = True
    concurrency: int | None = None
    boost: float | None = None
    max_instances: int | None = None
    scaling_threshold: float | None = None
    shutdown_after_seconds: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # [HEAD] fields a 2026 validator adds
    tee: bool = False
    effective_compute_multiplier: float = 1.0
    compute_multiplier_factors: dict[str, float] = Field(default_factory=dict)
    bounty: int | None = None
    disabled: bool = False

    @property
    def gpu_count(self) -> int:
        return self.node_selector.gpu_count

    @property
    def job_only(self) -> bool:
        """A chute without cords serves no HTTP: it only runs jobs and is never autoscaled."""
        return not self.cords

    @property
    def uses_launch_config(self) -> bool:
        """chutes >= 0.3.0 start through a launch-config JWT; older ones use announce/activate."""
        return is_launch_config_version(self.chutes_version)


def is_launch_config_version(chutes_version: str | None) -> bool:
    if not chutes_version:
        return False
    parts: list[int] = []
    for piece in chutes_version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts) >= (0, 3, 0)


class ValidatorImage(_Wire):
    image_id: str
    username: str | None = None
    name: str = ""
    tag: str = ""
    patch_version: str | None = None
    chutes_version: str | None = None
    status: str | None = None
    public: bool = True

    @property
    def pull_ref(self) -> str:
        ref = f"{self.username}/{self.name}:{self.tag}"
        if self.patch_version and self.patch_version != "initial":
            ref += f"-{self.patch_version}"
        return ref


class ValidatorNode(_Wire):
    """One GPU the validator knows for our hotkey."""

    uuid: str
    name: str | None = None
    gpu_identifier: str | None = None
    device_index: int | None = None
    server_id: str | None = None
    miner_hotkey: str | None = None
    verified_at: datetime | None = None
    verification_error: str | None = None


class ValidatorInstance(_Wire):
    instance_id: str
    chute_id: str
    version: str | None = None
    miner_hotkey: str | None = None
    host: str | None = None
    port: int | None = None
    active: bool = False
    verified: bool = False
    config_id: str | None = None
    last_verified_at: datetime | None = None
    activated_at: datetime | None = None
    created_at: datetime | None = None
    billed_to: str | None = None
    compute_multiplier: float | None = None


class ChuteMetrics(_Wire):
    chute_id: str
    total_invocations: int = 0
    total_compute_time: float = 0.0
    error_count: int = 0
    rate_limit_count: int = 0
    instance_count: int = 0
    compute_multiplier: float = 0.0
    per_second_price_usd: float = 0.0
    total_usage_usd: float = 0.0


class ValidatorJob(_Wire):
    job_id: str
    chute_id: str
    method: str | None = None
    status: str | None = None
    instance_id: str | None = None
    miner_hotkey: str | None = None
    miner_history: list[str] = Field(default_factory=list)
    compute_multiplier: float | None = None
    job_args: dict[str, Any] = Field(default_factory=dict)

    @property
    def requested_disk_gb(self) -> object:
        """The disk the job asked for (`job_args._disk_gb`, as the validator sets it), unparsed;
        None when the row does not say."""
        return self.job_args.get("_disk_gb")


class ActiveInstance(_Wire):
    """Any miner's active and verified instance (``/miner/active_instances/``), for preemption."""

    instance_id: str
    chute_id: str
    miner_hotkey: str | None = None
    activated_at: datetime | None = None
    compute_multiplier: float = 0.0


class ServerGpu(_Wire):
    uuid: str
    gpu_identifier: str | None = None
    device_index: int | None = None
    verified_at: datetime | None = None
    verification_error: str | None = None


class ValidatorServer(_Wire):
    server_id: str
    name: str | None = None
    ip: str | None = None
    is_tee: bool = False
    version: str | None = None
    gpus: list[ServerGpu] = Field(default_factory=list)


class ChuteUtilization(_Wire):
    chute_id: str
    scalable: bool = True
    update_in_progress: bool = False
    scale_allowance: int = 0
    target_count: int | None = None
    instance_count: int = 0
    total_instance_count: int | None = None
    active_instance_count: int | None = None
    utilization_1h: float | None = None
    rate_limit_ratio_1h: float | None = None
    total_requests_1h: float | None = None
    action_taken: str | None = None


class RollingUpdate(_Wire):
    chute_id: str
    old_version: str | None = None
    new_version: str | None = None
    started_at: datetime | None = None
    permitted: dict[str, int] = Field(default_factory=dict)


class LaunchConfig(_Wire):
    token: str
    config_id: str


# ---- stream results -----------------------------------------------------------------------


class StreamStatus(enum.Enum):
    ITEMS = "items"  # at least one item arrived: the list is the full current set
    EMPTY = "empty"  # `data: NO_ITEMS`: the validator says authoritatively there are none
    NO_INFORMATION = "no_information"  # an empty body without NO_ITEMS: keep what we had


T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StreamResult(Generic[T]):
    status: StreamStatus
    items: tuple[T, ...] = ()

    @classmethod
    def of(cls, items: tuple[T, ...], saw_no_items: bool) -> StreamResult[T]:
        if items:
            return cls(StreamStatus.ITEMS, items)
        return cls(StreamStatus.EMPTY if saw_no_items else StreamStatus.NO_INFORMATION)

    @property
    def authoritative(self) -> bool:
        return self.status is not StreamStatus.NO_INFORMATION
