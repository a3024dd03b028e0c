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

Values here are gross earnings ``lambda * p * m`` per hour: the GPUs are the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from gepetto_core.scheduling.context import Context, Slot, Srv
from gepetto_core.scheduling.plan import Placement, Preemption
from gepetto_core.scheduling.policy import PreemptionPolicy
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


def _keep_value(d: DeploymentView, ctx: Context) -> tuple[float, float]:
    """(gross $/h the victim earns now, its multiplier). It is past its first hour: p = 1."""
    chute = ctx.snapshot.chute_by_id.get(d.chute_id)
    m = d.compute_multiplier
    if m is None:
        m = chute.effective_compute_multiplier if chute is not None else 0.0
    return ctx.policy.dollars_per_multiplier_hour * m, m


def _new_value(chute: ChuteView, ctx: Context, srv: Srv) -> float:
    p = (
        ctx.rel.p(chute.chute_id, srv.view.server_id)
        if ctx.policy.value_model == "expected"
        else 1.0
    )
    pol = ctx.policy
    gross = pol.dollars_per_multiplier_hour * success_share(p, chute, pol)
    m_bar = expected_multiplier(chute, pol)
    return gross * m_bar * startup_factor(chute, pol) - failure_charge(p, pol, m_bar)


def _new_value_bound(chute: ChuteView, ctx: Context) -> float:
    """`_new_value` on the most reliable server the chute could get (p <= 1)."""
    lam = ctx.policy.dollars_per_multiplier_hour
    return lam * expected_multiplier(chute, ctx.policy) * startup_factor(chute, ctx.policy)


def _kind(slot: Slot, snapshot: Snapshot) -> str:
    if slot.job_id is not None:
        return "job"
    if slot.chute.bounty_boost > 1.0 and snapshot.our_instances(slot.chute.chute_id) == 0:
        return "bounty"
    return "better_work"


def plan_preemptions(
    ctx: Context, unplaced: Sequence[Slot], placements: Sequence[Placement]
) -> list[Preemption]:
    snapshot, pol = ctx.snapshot, ctx.policy.preemption
    now = ctx.now
    hour_ago = now - timedelta(hours=1)
    budget = pol.fleet_per_hour - sum(1 for r in snapshot.recent_preemptions if r.at > hour_ago)
    cooling = {
        r.server_id for r in snapshot.recent_preemptions if r.at > now - pol.per_server_interval
    }
    lam = ctx.policy.dollars_per_multiplier_hour
    # Victims that pass the rules independent of the newcomer, cheapest first per server; the
    # newcomer-dependent rules (same chute, only instance) are checked per slot below.
    eligible: dict[str, list[tuple[float, float, DeploymentView]]] = {}
    for d in snapshot.deployments:
        if victim_rejection(d, snapshot, pol, now, "") is None:
            v_keep, m_keep = _keep_value(d, ctx)
            eligible.setdefault(d.server_id, []).append((v_keep, m_keep, d))
    for lst in eligible.values():
        lst.sort(key=lambda c: c[0])
    if not eligible:
        return []
    # Only servers holding a possible victim can make room; in server order, per group.
    offering = {
        id(grp): [srv for srv in grp.servers if srv.view.server_id in eligible]
        for grp in ctx.groups.values()
    }
    out: list[Preemption] = []
    taken_per_chute: dict[str, int] = {}
    used_victims: set[str] = set()
    handled: set[str] = set()
    for slot in unplaced:
        if budget <= 0:
            break
        chute = slot.chute
        key = chute.chute_id if slot.job_id is None else f"job:{slot.job_id}"
        if key in handled:
            continue
        handled.add(key)
        kind = _kind(slot, snapshot)
        g = chute.gpu_count
        # No server can beat the hysteresis when even its cheapest victim earns too much.
        v_cap = _new_value_bound(chute, ctx) / (1.0 + pol.min_gain_ratio)
        best: tuple[float, Srv, list[DeploymentView], float, float] | None = None
        for grp in slot.groups:
            for srv in offering[id(grp)]:
                sid = srv.view.server_id
                if sid in cooling or (slot.blocked and sid in slot.blocked):
                    continue
                need = g - srv.free
                if need <= 0:
                    continue  # it had room; the planner chose not to use it
                candidates = eligible.get(sid)
                if not candidates:
                    continue
                if kind != "job" and candidates[0][0] >= v_cap:
                    continue
                chosen: list[DeploymentView] = []
                freed = 0
                keep_value = 0.0
                keep_mult = 0.0
                per_chute: dict[str, int] = {}
                for v_keep, m_keep, d in candidates:
                    if freed >= need:
                        break
                    if kind != "job" and keep_value + v_keep >= v_cap:
                        break  # cheapest first: the rest only cost more
                    cid = d.chute_id
                    if cid == chute.chute_id or d.deployment_id in used_victims:
                        continue
                    c = snapshot.chute_by_id.get(cid)
                    network = c.instance_count if c is not None else 0
                    taken = taken_per_chute.get(cid, 0) + per_chute.get(cid, 0)
                    if network - taken <= 1:
                        continue  # the only instance of its chute network-wide
                    chosen.append(d)
                    per_chute[cid] = per_chute.get(cid, 0) + 1
                    freed += len(d.gpu_ids)
                    keep_value += v_keep
                    keep_mult += m_keep
                if freed < need:
                    continue
                v_new = _new_value(chute, ctx, srv)
                gain = v_new - keep_value
                if kind == "job":
                    if any(
                        _keep_value(d, ctx)[1] >= chute.effective_compute_multiplier for d in chosen
                    ):
                        continue
                else:
                    if gain < max(pol.min_gain_ratio * keep_value, pol.min_gain):
                        continue
                    t_start = ctx.policy.startup_hours(g, chute.startup_minutes)
                    payback_h = pol.payback.total_seconds() / 3600.0
                    if gain * payback_h < lam * keep_mult * t_start:
                        continue
                if best is None or gain > best[0]:
                    best = (gain, srv, chosen, keep_value, v_new)
        if best is None:
            continue
        gain, srv, chosen, keep_value, v_new = best
        sid = srv.view.server_id
        gpu_ids = list(srv.free_ids)
        for d in chosen:
            gpu_ids.extend(d.gpu_ids)
        confirmed = (
            kind != "better_work"
            or pol.confirm_rounds <= 1
            or ((chute.chute_id, sid) in snapshot.proposed_preemptions)
        )
        placement = Placement(
            chute_id=chute.chute_id,
            server_id=sid,
            gpu_ids=tuple(gpu_ids[:g]),
            value=v_new,
            reason=f"preempt for {kind}: gain {gain:.3f}/h over {keep_value:.3f}/h kept",
            job_id=slot.job_id,
        )
        out.append(
            Preemption(
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
        )
        for d in chosen:
            used_victims.add(d.deployment_id)
            taken_per_chute[d.chute_id] = taken_per_chute.get(d.chute_id, 0) + 1
        # The server's free GPUs now belong to this preemption.
        assert srv.group is not None
        srv.group.remove(srv)
        srv.set_free_ids([])
        cooling.add(sid)
        if confirmed:
            budget -= 1
    return out
