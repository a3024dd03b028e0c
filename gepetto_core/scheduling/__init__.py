"""Pure scheduling: rules, the value model, back-off, the batch planner, preemption, explanations.

No I/O, no clock, no randomness of its own: `now` and `rng` are arguments. The services layer
maps inventory, validator and cluster data into a `Snapshot` and applies the returned `RoundPlan`.
"""

from gepetto_core.scheduling.backoff import BackoffState, Cooldown, backoff_state
from gepetto_core.scheduling.explain import (
    ChuteRank,
    Explanation,
    PairRank,
    explain,
    rank_chutes,
    rank_pairs,
)
from gepetto_core.scheduling.plan import ChuteDecision, Placement, Preemption, RoundPlan, Step
from gepetto_core.scheduling.planner import plan_round
from gepetto_core.scheduling.policy import (
    BackoffPolicy,
    PlanPolicy,
    PreemptionPolicy,
    ReliabilityPolicy,
)
from gepetto_core.scheduling.rules import Reason, Rejection
from gepetto_core.scheduling.snapshot import (
    ChuteMetrics,
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    PreemptionRecord,
    PublicFootprint,
    ServerView,
    Snapshot,
)

__all__ = [
    "BackoffPolicy",
    "BackoffState",
    "ChuteDecision",
    "ChuteMetrics",
    "ChuteRank",
    "ChuteUtilization",
    "ChuteView",
    "Cooldown",
    "DeploymentView",
    "Explanation",
    "FailureRecord",
    "GpuView",
    "PairRank",
    "Placement",
    "PlanPolicy",
    "Preemption",
    "PreemptionPolicy",
    "PreemptionRecord",
    "PublicFootprint",
    "Reason",
    "Rejection",
    "ReliabilityPolicy",
    "RoundPlan",
    "ServerView",
    "Snapshot",
    "Step",
    "backoff_state",
    "explain",
    "plan_round",
    "rank_chutes",
    "rank_pairs",
]
