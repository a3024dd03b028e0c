"""The planner's output: what to deploy where, what to preempt, and why for every chute."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gepetto_core.scheduling.rules import Rejection


@dataclass(frozen=True, slots=True)
class Placement:
    chute_id: str
    server_id: str
    gpu_ids: tuple[str, ...]
    value: float
    reason: str
    job_id: str | None = None


class Step(StrEnum):
    """Order in which the deployer must carry out a preemption."""

    ACQUIRE_LAUNCH_TOKEN = "acquire_launch_token"
    UNDEPLOY_VICTIMS = "undeploy_victims"
    DEPLOY = "deploy"


@dataclass(frozen=True, slots=True)
class Preemption:
    """Remove `victims` to make room for `placement`.

    The launch token for the new instance must be obtained before anything is removed: a 423 or
    a job already claimed by another miner would otherwise cost us the victims for nothing.
    """

    placement: Placement
    victims: tuple[str, ...]  # deployment ids
    victims_value: float
    kind: str  # "job" | "bounty" | "better_work"
    reason: str
    # False: proposed in this round, to be carried out only if the next round proposes it too.
    confirmed: bool = True
    token_before_undeploy: bool = True

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.token_before_undeploy:
            return (Step.ACQUIRE_LAUNCH_TOKEN, Step.UNDEPLOY_VICTIMS, Step.DEPLOY)
        return (Step.UNDEPLOY_VICTIMS, Step.ACQUIRE_LAUNCH_TOKEN, Step.DEPLOY)


@dataclass(frozen=True, slots=True)
class ChuteDecision:
    chute_id: str
    wanted: int  # how many instances the allowance permitted this round
    placed: int
    rejection: Rejection | None  # why none (or not all) were placed
    best_server_id: str | None = None
    best_value: float | None = None
    # What one more instance would have had to be worth to be placed (None: nothing to beat).
    needed_value: float | None = None


@dataclass(frozen=True)
class RoundPlan:
    """What `plan_round` decided for one round (not to be confused with a reconcile pass's
    `ReconcilePlan` or a command's `ActionPlan`)."""

    placements: tuple[Placement, ...]
    preemptions: tuple[Preemption, ...] = ()
    decisions: Mapping[str, ChuteDecision] = field(default_factory=dict)
    server_rejections: Mapping[str, Rejection] = field(default_factory=dict)
    # GPU opportunity cost per GPU by server id (value units per hour); absent = 0.
    gpu_prices: Mapping[str, float] = field(default_factory=dict)

    @property
    def total_value(self) -> float:
        return sum(p.value for p in self.placements)
