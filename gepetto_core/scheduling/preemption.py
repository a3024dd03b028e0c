"""Preemption: remove running instances to make room for a job, a bounty or clearly better work.

Guardrails (upstream's, and `docs/scheduling.md#preemption`), checked per victim:
- never a private (non-preemptible) instance, a job, an instance not yet activated, or one
  younger than the dwell time since activation (it would earn nothing);
- never the only instance of its chute network-wide;
- never an instance of the same chute.

Then per preemption:
- hysteresis for bounties and better work: ``v_new - v_keep >= max(min_gain_ratio * v_keep,
  min_gain)`` and the gain must repay, within `payback`, what the victims would have earned while
  the newcomer starts;
- jobs follow the official rule instead: every victim's multiplier is below the job chute's;
- budget: one preemption per server per `per_server_interval`, `fleet_per_hour` fleet-wide;
- better work must be proposed in `confirm_rounds` consecutive rounds (`confirmed=False` first);
- the plan says to obtain the launch token before removing anything.

Values are $ per hour net of the GPU cost the planner weighs (``kappa * gpus * hourly cost``,
`PlanPolicy.cost_weight`): an 8-GPU newcomer in place of one 1-GPU victim also puts seven idle GPUs
to work, and on a fleet that pays for what it holds those must earn their cost. A newcomer must be
worth more than the placement floor (`min_value`), as any placement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from gepetto_core.scheduling.plan import Placement, Preemption
from gepetto_core.scheduling.policy import PreemptionPolicy
from gepetto_core.scheduling.round_state import RoundState, Slot, Srv
from gepetto_core.scheduling.snapshot import ChuteView, DeploymentView, Snapshot
from gepetto_core.scheduling.value import (
    expected_multiplier,
    failure_charge,
    startup_factor,
    success_share,
)


def victim_rejection(
    d: DeploymentView,
    snapshot: Snapshot,
    policy: PreemptionPolicy,
    now: datetime,
    new_chute_id: str,
    taken_per_chute: Mapping[str, int] | None = None,
) -> str | None:
    """Why this deployment may not be preempted (None: it may). `taken_per_chute` counts
    victims already chosen per chute in this round (for the only-instance rule)."""
    if d.job_id is not None:
        return "is a job"
    if not d.preemptible:
        return "is a private (non-preemptible) instance"
    if d.chute_id == new_chute_id:
        return "is the same chute"
    if not d.active or d.activated_at is None:
        return "is not activated yet"
    if d.activated_at > now - policy.dwell:
        return f"is younger than the {policy.dwell} dwell time"
    chute = snapshot.chute_by_id.get(d.chute_id)
    network = chute.instance_count if chute is not None else 0
    taken = taken_per_chute.get(d.chute_id, 0) if taken_per_chute else 0
    if network - taken <= 1:
        return "is the only instance of its chute network-wide"
    return None


def _gpu_cost(ctx: RoundState, gpus: int, hourly_cost: float) -> float:
    """$/h of `gpus` GPUs as the planner weighs them (zero when the cost is sunk)."""
    return ctx.policy.cost_weight * gpus * hourly_cost


def _multiplier(d: DeploymentView, ctx: RoundState) -> float:
    if d.compute_multiplier is not None:
        return d.compute_multiplier
    chute = ctx.snapshot.chute_by_id.get(d.chute_id)
    return chute.effective_compute_multiplier if chute is not None else 0.0


def _keep_value(d: DeploymentView, ctx: RoundState, hourly_cost: float) -> tuple[float, float]:
    """($/h the victim earns now net of its GPUs' cost, its multiplier). It is past its first
    hour: p = 1."""
    m = _multiplier(d, ctx)
    gross = ctx.policy.dollars_per_multiplier_hour * m
    return gross - _gpu_cost(ctx, len(d.gpu_ids), hourly_cost), m


def _new_value(chute: ChuteView, ctx: RoundState, srv: Srv) -> float:
    p = ctx.rel.p(chute.chute_id, srv.view.server_id)
    pol = ctx.policy
    gross = pol.dollars_per_multiplier_hour * success_share(p, chute, pol)
    m_bar = expected_multiplier(chute, pol)
    earned = gross * m_bar * startup_factor(chute, pol) - failure_charge(p, pol, m_bar)
    return earned - _gpu_cost(ctx, chute.gpu_count, srv.cost)


def _new_value_bound(chute: ChuteView, ctx: RoundState, srv: Srv) -> float:
    """`_new_value` on `srv` were the chute certain to survive there (p <= 1)."""
    lam = ctx.policy.dollars_per_multiplier_hour
    earned = lam * expected_multiplier(chute, ctx.policy) * startup_factor(chute, ctx.policy)
    return earned - _gpu_cost(ctx, chute.gpu_count, srv.cost)


def _kind(slot: Slot, snapshot: Snapshot) -> str:
    if slot.job_id is not None:
        return "job"
    if slot.chute.bounty_boost > 1.0 and snapshot.our_instances(slot.chute.chute_id) == 0:
        return "bounty"
    return "better_work"


class Candidate(NamedTuple):
    """A deployment that passes the newcomer-independent victim rules."""

    value: float  # gross $/h it earns now
    multiplier: float
    deployment: DeploymentView


@dataclass(slots=True)
class Victims:
    """The deployments one preemption would remove, and what they earn together."""

    deployments: list[DeploymentView] = field(default_factory=list)
    freed_gpus: int = 0
    value: float = 0.0
    multiplier: float = 0.0


class Offer(NamedTuple):
    """Preempting `victims` on `server` for a slot: the newcomer earns `new_value`."""

    gain: float
    server: Srv
    victims: Victims
    new_value: float


@dataclass(slots=True)
class RoundBudget:
    """What the preemptions chosen so far in this round use up."""

    remaining: int  # preemptions left this hour, fleet-wide
    cooling: set[str]  # servers preempted on within `per_server_interval`
    taken_per_chute: dict[str, int] = field(default_factory=dict)
    used_victims: set[str] = field(default_factory=set)


def plan_preemptions(
    ctx: RoundState, unplaced: Sequence[Slot], placements: Sequence[Placement]
) -> list[Preemption]:
    eligible = _eligible_victims(ctx)
    if not eligible:
        return []
    budget = _round_budget(ctx)
    # Only servers holding a possible victim can make room; in server order, per group.
    offering = {
        grp: [srv for srv in grp.servers if srv.view.server_id in eligible]
        for grp in ctx.groups.values()
    }
    out: list[Preemption] = []
    handled: set[str] = set()
    for slot in unplaced:
        if budget.remaining <= 0:
            break
        key = slot.chute.chute_id if slot.job_id is None else f"job:{slot.job_id}"
        if key in handled:
            continue
        handled.add(key)
        kind = _kind(slot, ctx.snapshot)
        best: Offer | None = None
        for grp in slot.groups:
            for srv in offering[grp]:
                offer = _offer_on(ctx, slot, kind, srv, eligible, budget)
                if offer is not None and (best is None or offer.gain > best.gain):
                    best = offer
        if best is not None:
            out.append(_take(ctx, slot, kind, best, budget))
    return out


def _round_budget(ctx: RoundState) -> RoundBudget:
    snapshot, pol, now = ctx.snapshot, ctx.policy.preemption, ctx.now
    hour_ago = now - timedelta(hours=1)
    done = sum(1 for r in snapshot.recent_preemptions if r.at > hour_ago)
    cooling = {
        r.server_id for r in snapshot.recent_preemptions if r.at > now - pol.per_server_interval
    }
    return RoundBudget(remaining=pol.fleet_per_hour - done, cooling=cooling)


def _eligible_victims(ctx: RoundState) -> dict[str, list[Candidate]]:
    """Per server, the deployments that pass the rules independent of the newcomer, cheapest
    first; the newcomer-dependent rules (same chute, only instance) are checked per slot."""
    snapshot, pol = ctx.snapshot, ctx.policy.preemption
    eligible: dict[str, list[Candidate]] = {}
    cost = {srv.view.server_id: srv.cost for srv in ctx.servers}
    for d in snapshot.deployments:
        if d.server_id in cost and victim_rejection(d, snapshot, pol, ctx.now, "") is None:
            v_keep, m_keep = _keep_value(d, ctx, cost[d.server_id])
            eligible.setdefault(d.server_id, []).append(Candidate(v_keep, m_keep, d))
    for lst in eligible.values():
        lst.sort(key=lambda c: c.value)
    return eligible


def _offer_on(
    ctx: RoundState,
    slot: Slot,
    kind: str,
    srv: Srv,
    eligible: Mapping[str, list[Candidate]],
    budget: RoundBudget,
) -> Offer | None:
    """The preemption on `srv` that makes room for `slot`, if the guardrails allow one."""
    pol = ctx.policy.preemption
    chute = slot.chute
    sid = srv.view.server_id
    if sid in budget.cooling or (slot.blocked and sid in slot.blocked):
        return None
    need = chute.gpu_count - srv.free
    if need <= 0:
        return None  # it had room; the planner chose not to use it
    candidates = eligible.get(sid)
    if not candidates:
        return None
    bound = _new_value_bound(chute, ctx, srv)
    if kind != "job" and bound <= ctx.policy.min_value:
        return None  # the newcomer would not be worth its GPUs here
    # No victims can beat the hysteresis when even the cheapest earns too much.
    v_cap = bound / (1.0 + pol.min_gain_ratio)
    if kind != "job" and candidates[0].value >= v_cap:
        return None
    victims = _choose_victims(ctx, chute, kind, candidates, need, v_cap, budget)
    if victims is None:
        return None
    v_new = _new_value(chute, ctx, srv)
    if kind != "job" and v_new <= ctx.policy.min_value:
        return None
    gain = v_new - victims.value
    if not _worth_it(ctx, chute, kind, victims, gain):
        return None
    return Offer(gain, srv, victims, v_new)


def _choose_victims(
    ctx: RoundState,
    chute: ChuteView,
    kind: str,
    candidates: list[Candidate],
    need: int,
    v_cap: float,
    budget: RoundBudget,
) -> Victims | None:
    """The cheapest victims that free `need` GPUs (None: they cannot, within `v_cap`)."""
    victims = Victims()
    per_chute: dict[str, int] = {}
    for v_keep, m_keep, d in candidates:
        if victims.freed_gpus >= need:
            break
        if kind != "job" and victims.value + v_keep >= v_cap:
            break  # cheapest first: the rest only cost more
        cid = d.chute_id
        if cid == chute.chute_id or d.deployment_id in budget.used_victims:
            continue
        c = ctx.snapshot.chute_by_id.get(cid)
        network = c.instance_count if c is not None else 0
        taken = budget.taken_per_chute.get(cid, 0) + per_chute.get(cid, 0)
        if network - taken <= 1:
            continue  # the only instance of its chute network-wide
        victims.deployments.append(d)
        per_chute[cid] = per_chute.get(cid, 0) + 1
        victims.freed_gpus += len(d.gpu_ids)
        victims.value += v_keep
        victims.multiplier += m_keep
    return victims if victims.freed_gpus >= need else None


def _worth_it(ctx: RoundState, chute: ChuteView, kind: str, victims: Victims, gain: float) -> bool:
    """Jobs: every victim's multiplier is below the job chute's. Otherwise the hysteresis, and
    the gain repays within `payback` what the victims would earn while the newcomer starts."""
    pol = ctx.policy.preemption
    if kind == "job":
        return not any(
            _multiplier(d, ctx) >= chute.effective_compute_multiplier for d in victims.deployments
        )
    if gain < max(pol.min_gain_ratio * victims.value, pol.min_gain):
        return False
    t_start = ctx.policy.startup_hours(chute.gpu_count, chute.startup_minutes)
    payback_h = pol.payback.total_seconds() / 3600.0
    lam = ctx.policy.dollars_per_multiplier_hour
    return not gain * payback_h < lam * victims.multiplier * t_start


def _take(ctx: RoundState, slot: Slot, kind: str, offer: Offer, budget: RoundBudget) -> Preemption:
    """The preemption for `offer`; its victims and the server's free GPUs are used up."""
    pol = ctx.policy.preemption
    chute, srv, chosen = slot.chute, offer.server, offer.victims.deployments
    keep_value, v_new = offer.victims.value, offer.new_value
    sid = srv.view.server_id
    gpu_ids = list(srv.free_ids)
    for d in chosen:
        gpu_ids.extend(d.gpu_ids)
    confirmed = (
        kind != "better_work"
        or pol.confirm_rounds <= 1
        or ((chute.chute_id, sid) in ctx.snapshot.proposed_preemptions)
    )
    placement = Placement(
        chute_id=chute.chute_id,
        server_id=sid,
        gpu_ids=tuple(gpu_ids[: chute.gpu_count]),
        value=v_new,
        reason=f"preempt for {kind}: gain {offer.gain:.3f}/h over {keep_value:.3f}/h kept",
        job_id=slot.job_id,
    )
    for d in chosen:
        budget.used_victims.add(d.deployment_id)
        budget.taken_per_chute[d.chute_id] = budget.taken_per_chute.get(d.chute_id, 0) + 1
    # The server's free GPUs now belong to this preemption.
    assert srv.group is not None
    srv.group.remove(srv)
    srv.set_free_ids([])
    budget.cooling.add(sid)
    if confirmed:
        budget.remaining -= 1
    return Preemption(
        placement=placement,
        victims=tuple(d.deployment_id for d in chosen),
        victims_value=keep_value,
        kind=kind,
        reason=(
            f"{chute.name}: {kind}; removes {len(chosen)} instance(s) worth "
            f"{keep_value:.3f}/h for {v_new:.3f}/h"
        ),
        confirmed=confirmed,
    )
