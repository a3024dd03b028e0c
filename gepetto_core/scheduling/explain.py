"""Why a chute was or was not placed, and the operator's ranking views (`scales`, `chutes`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gepetto_core.errors import NotFoundError
from gepetto_core.scheduling.assignment import slot_value
from gepetto_core.scheduling.plan import ChuteDecision, Placement, Preemption, RoundPlan
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.round_state import RoundState, Slot, Srv, Tier, build_round_state
from gepetto_core.scheduling.rules import Reason, Rejection, compatibility_rejection, pair_rejection
from gepetto_core.scheduling.snapshot import ChuteView, ServerView, Snapshot

Verdict = Literal["placed", "skipped", "never_eligible"]

# Rules that say the chute could not be placed anywhere this round whatever the fleet looked like.
_NEVER = {
    Reason.BANNED,
    Reason.NO_CORDS,
    Reason.NOT_SCALABLE,
    Reason.UPDATE_IN_PROGRESS,
    Reason.STALE_VERSION,
    Reason.NO_MULTIPLIER,
    Reason.NOT_WHITELISTED,
    Reason.NO_ALLOWANCE,
    Reason.PUBLIC_FOOTPRINT,
    Reason.VALIDATOR_MISMATCH,
    Reason.TEE_MISMATCH,
    Reason.GPU_UNSUPPORTED,
    Reason.NO_SERVER,
}


@dataclass(frozen=True, slots=True)
class Explanation:
    chute_id: str
    name: str
    verdict: Verdict
    placed: int
    wanted: int
    rule: Reason | None
    detail: str
    best_server_id: str | None
    best_value: float | None
    needed_value: float | None

    def __str__(self) -> str:
        head = f"{self.name} ({self.chute_id}): {self.verdict}"
        if self.verdict == "placed":
            head += f" {self.placed} of {self.wanted}"
        parts = [head]
        if self.rule is not None:
            parts.append(f"rule {self.rule.value}: {self.detail}")
        elif self.detail:
            parts.append(self.detail)
        if self.best_server_id is not None and self.best_value is not None:
            parts.append(f"best server {self.best_server_id} worth {self.best_value:.3f}/h")
        if self.needed_value:
            parts.append(f"needed more than {self.needed_value:.3f}/h")
        return "; ".join(parts)


def explain(snapshot: Snapshot, plan: RoundPlan, chute_id: str) -> Explanation:
    chute = snapshot.chute_by_id.get(chute_id)
    if chute is None:
        raise NotFoundError("chute", chute_id, [c for c in snapshot.chute_by_id if chute_id in c])
    decision = plan.decisions.get(chute_id)
    placements = [p for p in plan.placements if p.chute_id == chute_id]
    preempts = [p for p in plan.preemptions if p.placement.chute_id == chute_id]
    if decision is None:
        return Explanation(
            chute_id=chute_id,
            name=chute.name,
            verdict="never_eligible",
            placed=0,
            wanted=0,
            rule=None,
            detail="not considered by this plan",
            best_server_id=None,
            best_value=None,
            needed_value=None,
        )
    if placements:
        return _explain_placed(chute, decision, placements)
    if preempts:
        return _explain_preemption(chute, decision, preempts[0])
    rej = decision.rejection
    verdict: Verdict = "never_eligible" if rej is not None and rej.reason in _NEVER else "skipped"
    return Explanation(
        chute_id=chute_id,
        name=chute.name,
        verdict=verdict,
        placed=0,
        wanted=decision.wanted,
        rule=rej.reason if rej else None,
        detail=rej.detail if rej else "",
        best_server_id=decision.best_server_id,
        best_value=decision.best_value,
        needed_value=decision.needed_value,
    )


def _explain_placed(
    chute: ChuteView, decision: ChuteDecision, placements: list[Placement]
) -> Explanation:
    rej = decision.rejection  # why not all of the allowance was placed
    return Explanation(
        chute_id=chute.chute_id,
        name=chute.name,
        verdict="placed",
        placed=len(placements),
        wanted=decision.wanted,
        rule=rej.reason if rej else None,
        detail=rej.detail if rej else placements[0].reason,
        best_server_id=placements[0].server_id,
        best_value=placements[0].value,
        needed_value=decision.needed_value,
    )


def _explain_preemption(chute: ChuteView, decision: ChuteDecision, p: Preemption) -> Explanation:
    state = "confirmed" if p.confirmed else "proposed (needs the next round too)"
    return Explanation(
        chute_id=chute.chute_id,
        name=chute.name,
        verdict="placed",
        placed=0,
        wanted=decision.wanted,
        rule=None,
        detail=f"preemption {state}: {p.reason}",
        best_server_id=p.placement.server_id,
        best_value=p.placement.value,
        needed_value=None,
    )


@dataclass(frozen=True, slots=True)
class PairRank:
    chute_id: str
    chute_name: str
    server_id: str
    server_name: str
    gpu_type: str
    gpu_count: int
    value: float
    hourly_cost: float  # $ per hour for all the chute's GPUs on this server
    fits_now: bool
    reason: str | None  # why it does not fit now


def rank_pairs(
    snapshot: Snapshot,
    policy: PlanPolicy,
    now: datetime,
    gpu_filter: str | None = None,
    server_filter: str | None = None,
    limit: int | None = 50,
) -> list[PairRank]:
    """Best chute x server combinations for the `scales` view, with value and whether they fit
    now. Chutes the rules reject are listed with the rule as the reason."""
    ctx = build_round_state(snapshot, policy, now, random.Random(0))
    firsts: dict[str, Slot] = {}
    for candidate in ctx.slots:
        if candidate.job_id is None:
            firsts.setdefault(candidate.chute.chute_id, candidate)
    servers = [
        s
        for s in snapshot.servers
        if (gpu_filter is None or s.gpu_type == gpu_filter)
        and (server_filter is None or server_filter in (s.server_id, s.name))
    ]
    usable = {s.view.server_id: s for s in ctx.servers}
    out: list[PairRank] = []
    for chute in snapshot.chutes:
        terms = ctx.terms[chute.chute_id]
        slot = firsts.get(chute.chute_id)
        probe = (
            slot
            if slot is not None
            else Slot(
                chute,
                terms,
                ctx.chute_groups.get(chute.chute_id, []),
                {},
                1.0,
                frozenset(),
                Tier.ORDINARY,
            )
        )
        for view in servers:
            if compatibility_rejection(chute, view) is None:
                out.append(_pair_rank(ctx, probe, view, usable.get(view.server_id)))
    out.sort(key=lambda r: (not r.fits_now, -r.value))
    return out if limit is None else out[:limit]


def _pair_rank(ctx: RoundState, probe: Slot, view: ServerView, srv: Srv | None) -> PairRank:
    """The chute of `probe` on `view`: its value, and why it does not fit now (None: it does).
    A server the rules reject (`srv` None) is valued as if it were usable."""
    chute = probe.chute
    if srv is None:
        q_srv = Srv(view, 0, view.hourly_cost, 1.0, view.free_gpu_ids(), 1)
        value = slot_value(probe, q_srv)
        reason: str | None = str(ctx.server_rejections.get(view.server_id, "unusable"))
    else:
        value = slot_value(probe, srv)
        chute_rej = ctx.chute_rejections.get(chute.chute_id)
        pair = pair_rejection(chute, view, srv.free, ctx.backoff)
        reason = str(chute_rej) if chute_rej else (str(pair) if pair else None)
        if reason is None and value <= ctx.policy.min_value:
            reason = str(Rejection(Reason.UNPROFITABLE, f"value {value:.3f} <= floor"))
    return PairRank(
        chute.chute_id,
        chute.name,
        view.server_id,
        view.name,
        view.gpu_type,
        chute.gpu_count,
        value,
        view.hourly_cost * chute.gpu_count,
        reason is None,
        reason,
    )


@dataclass(frozen=True, slots=True)
class ChuteRank:
    chute_id: str
    name: str
    gpu_count: int
    multiplier: float
    expected_multiplier: float
    p_survive: float
    # What one instance is worth before server cost, $/h.
    score: float
    eligible: bool
    reason: str | None


def rank_chutes(
    snapshot: Snapshot,
    policy: PlanPolicy,
    now: datetime,
    gpu_filter: str | None = None,
    limit: int | None = None,
) -> list[ChuteRank]:
    """The `chutes` view: every chute by what one more instance is worth, with its rule."""
    ctx = build_round_state(snapshot, policy, now, random.Random(0))
    out: list[ChuteRank] = []
    for chute in snapshot.chutes:
        if gpu_filter is not None and gpu_filter not in chute.supported_gpus:
            continue
        terms = ctx.terms[chute.chute_id]
        rej = ctx.chute_rejections.get(chute.chute_id)
        out.append(
            ChuteRank(
                chute.chute_id,
                chute.name,
                chute.gpu_count,
                chute.effective_compute_multiplier,
                terms.expected_multiplier,
                terms.p_survive,
                terms.scale,
                rej is None,
                str(rej) if rej else None,
            )
        )
    out.sort(key=lambda r: (not r.eligible, -r.score))
    return out if limit is None else out[:limit]
