"""The batch planner: one round places as many instances as are worth placing, fleet-wide.

Algorithm (the model: `docs/scheduling.md`; `make bench` measures it against an LP bound):

1. Every chute that passes the rules gets one slot per instance its allowance permits; each
   slot's density is its best value per GPU. Jobs go first, then whitelisted chutes, then the
   rest, each tier by density.
2. Greedy: each slot takes the server that maximises value minus the GPU opportunity cost of
   the server's group; servers within `best_fit_window` of the best are ties, broken by the
   tightest fit (fewest GPUs left over) so empty boxes stay free for 8-GPU chutes.
3. Opportunity cost: a group that ran out of GPUs for a slot that was left unplaced is priced
   at that slot's value per GPU, and the greedy runs again, so a chute that can use cheap GPUs
   stops taking the H200s a better-paying H200-only chute needs. The best pass is kept.
4. Local search: a placement not on its best server moves there, the occupants it displaces
   taking its place; a multi-GPU placement may also trade its box for one where it is worth a
   little less when the occupants it displaces gain more (an unreliable box holds one big
   deploy better than many small ones).
5. Repair: an unplaced slot may evict lower-value new placements from one server when that is a
   net gain; the evicted ones then look for room elsewhere.
6. Small rounds: the 1-GPU slots are re-assigned exactly (a min-cost flow).

Pure: `now` and `rng` are arguments; rng only breaks exact cost ties between servers.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

from gepetto_core.scheduling.assignment import EPS, Assign, State, search
from gepetto_core.scheduling.decisions import chute_decisions, mark_round_limit
from gepetto_core.scheduling.exact_polish import exact_polish
from gepetto_core.scheduling.local_search import improve
from gepetto_core.scheduling.plan import Placement, RoundPlan
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.repair import repair
from gepetto_core.scheduling.round_state import (
    GroupKey,
    RoundState,
    Slot,
    Srv,
    Tier,
    build_round_state,
)
from gepetto_core.scheduling.snapshot import Snapshot

__all__ = ["plan_round"]

# A server's GPU opportunity cost per GPU and the slot whose bid set it (server index -> price).
Price = tuple[float, Slot | None]
Prices = dict[int, Price]
_NO_PRICE: Price = (0.0, None)


def _greedy(slots: list[Slot], floor: float, window: float) -> tuple[list[Assign], list[Slot]]:
    placed: list[Assign] = []
    unplaced: list[Slot] = []
    for slot in slots:
        found = search(slot, floor, window)
        if found is None:
            unplaced.append(slot)
            continue
        srv, v = found
        placed.append(Assign(slot, srv, v, State.take(srv, slot.chute.gpu_count)))
    return placed, unplaced


def _prices(
    ctx: RoundState,
    placed: list[Assign],
    unplaced: list[Slot],
    group_values: dict[Slot, dict[GroupKey, float]],
) -> Prices:
    """Per-GPU opportunity cost of each server, from what a pass denied other slots.

    - A server is priced at the best value per GPU of a turned-away slot it could have hosted
      on its own (enough free GPUs at the start of the round, not at the end): this prices
      scarce GPU types and the empty boxes 8-GPU chutes need.
    - A slot that ended up on a worse server than its best one prices its best server at what
      it lost per GPU (like a bid in an auction)."""
    prices: Prices = {}
    for a in placed:
        best = a.slot.best_server
        if best is not None and best is not a.srv and a.slot.best_value is not None:
            regret = (a.slot.best_value - a.value) / a.slot.chute.gpu_count
            if regret > prices.get(best.idx, _NO_PRICE)[0]:
                prices[best.idx] = (regret, a.slot)
    demand: dict[tuple[GroupKey, int], Price] = {}
    for slot in unplaced:
        g = slot.chute.gpu_count
        values = group_values.get(slot, {})
        for key, v in values.items():
            density = v / g
            if density > demand.get((key, g), _NO_PRICE)[0]:
                demand[(key, g)] = (density, slot)
    if not demand:
        return prices
    for grp in ctx.groups.values():
        levels = [(g, d) for (key, g), d in demand.items() if key == grp.key]
        # Only a group with no room left for that size turned the slot away.
        levels = [(g, d) for g, d in levels if not any(f >= g for f in grp.by_free)]
        if not levels:
            continue
        for srv in grp.servers:
            p = prices.get(srv.idx, _NO_PRICE)
            for g, d in levels:
                if srv.initial_free >= g and d[0] > p[0]:
                    p = d
            if p[0] > 0:
                prices[srv.idx] = p
    return prices


def _apply_prices(ctx: RoundState, prices: Prices) -> None:
    for srv in ctx.servers:
        srv.price, srv.price_owner = prices.get(srv.idx, _NO_PRICE)
    for grp in ctx.groups.values():
        grp.min_price = min((s.price for s in grp.servers), default=0.0)
        grp.owners = {
            s.price_owner for s in grp.servers if s.price > 0 and s.price_owner is not None
        }


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def _solve(ctx: RoundState) -> tuple[list[Assign], list[Slot]]:
    policy = ctx.policy
    floor = policy.min_value
    state = State(ctx)
    slots, no_room, group_values = _value_on_empty_fleet(ctx)
    _order_slots(slots, policy.size_priority)
    placed, unplaced, prices = _best_greedy_pass(ctx, state, slots, group_values)
    # Replay the best pass so server state matches it, then repair.
    state.reset()
    _apply_prices(ctx, prices)
    for a in placed:
        a.gpu_ids = State.take(a.srv, a.slot.chute.gpu_count)
    if policy.repair:
        placed = improve(placed, floor, budget=200)
    if policy.repair and unplaced:
        placed, unplaced = repair(placed, unplaced, floor, policy.best_fit_window, budget=500)
    # Capacities in the flow are GPUs; a pull limit would make them two resources.
    if policy.repair and policy.exact_pairs_limit > 0 and policy.max_pulls_per_server is None:
        placed, unplaced = exact_polish(ctx, placed, unplaced, floor)
    unplaced = sorted(unplaced + no_room, key=lambda s: (s.tier, -s.density))
    return placed, unplaced


def _value_on_empty_fleet(
    ctx: RoundState,
) -> tuple[list[Slot], list[Slot], dict[Slot, dict[GroupKey, float]]]:
    """Each slot's best value on the empty fleet gives its density and per-group values.
    Returns the slots that fit somewhere, those that fit nowhere free (preemption may still
    find them room) and each slot's best value per group."""
    floor, window = ctx.policy.min_value, ctx.policy.best_fit_window
    group_values: dict[Slot, dict[GroupKey, float]] = {}
    best_cache: dict[str, tuple[tuple[Srv, float] | None, dict[GroupKey, float]]] = {}
    slots: list[Slot] = []
    no_room: list[Slot] = []
    for slot in ctx.slots:
        cid = slot.chute.chute_id
        if cid not in best_cache:
            per_group: dict[GroupKey, float] = {}
            best_cache[cid] = (search(slot, floor, window, False, per_group), per_group)
        found, group_values[slot] = best_cache[cid]
        if found is None:
            slot.density = slot.terms.scale / max(1, slot.chute.gpu_count)
            no_room.append(slot)
            continue
        slot.best_server, slot.best_value = found
        slot.density = found[1] / max(1, slot.chute.gpu_count)
        slots.append(slot)
    return slots, no_room, group_values


def _order_slots(slots: list[Slot], bonus: float) -> None:
    if bonus > 0:
        # Whole boxes free up rarely once a fleet is full, and one big instance is one deploy
        # that can fail where eight small ones are eight: slots are taken by density raised
        # by `size_priority` per doubling of GPUs, so 1-GPU chutes fill the gaps around big
        # ones unless they pay clearly more.
        slots.sort(key=lambda s: (s.tier, -s.density * (1.0 + bonus * _log2(s.chute.gpu_count))))
    else:
        slots.sort(key=lambda s: (s.tier, -s.density))


def _best_greedy_pass(
    ctx: RoundState,
    state: State,
    slots: list[Slot],
    group_values: dict[Slot, dict[GroupKey, float]],
) -> tuple[list[Assign], list[Slot], Prices]:
    """Greedy passes, each re-priced with the GPU opportunity costs the previous one revealed,
    until the prices settle or `opportunity_passes` run out. Returns the best pass and the
    prices it ran with."""
    policy = ctx.policy
    best_placed: list[Assign] = []
    best_unplaced: list[Slot] = list(slots)
    best_total = -math.inf
    best_prices: Prices = {}
    prices: Prices = {}
    for _ in range(max(1, policy.opportunity_passes)):
        state.reset()
        _apply_prices(ctx, prices)
        placed, unplaced = _greedy(slots, policy.min_value, policy.best_fit_window)
        total = sum(a.value for a in placed)
        if total > best_total + EPS:
            best_total, best_placed, best_unplaced = total, placed, unplaced
            best_prices = prices
        new_prices = _prices(ctx, placed, unplaced, group_values)
        if not new_prices:
            break
        if new_prices == prices:
            break
        prices = new_prices
    return best_placed, best_unplaced, best_prices


def _reason(a: Assign) -> str:
    t = a.slot.terms
    view = a.srv.view
    if a.slot.job_id is not None:
        head = f"job {a.slot.job_id}"
    elif a.slot.tier == Tier.WHITELISTED:
        head = "whitelisted"
    else:
        head = "best value"
    return (
        f"{head}: expected value {a.value:.3f} on {view.name} ({view.gpu_type}, "
        f"${view.hourly_cost:.2f}/GPU-h), m={t.expected_multiplier:.3f}, p={t.p_survive:.2f}"
    )


def plan_round(
    snapshot: Snapshot, policy: PlanPolicy, now: datetime, rng: random.Random
) -> RoundPlan:
    """Plan one round: new placements on free GPUs, then preemptions for what did not fit."""
    from gepetto_core.scheduling.preemption import plan_preemptions

    ctx = build_round_state(snapshot, policy, now, rng)
    assigns, unplaced = _solve(ctx)
    assigns.sort(key=lambda a: (a.slot.tier, -a.value))
    limit = policy.max_deploys_per_round
    deferred: list[Slot] = []
    if limit is not None and len(assigns) > limit:
        for a in assigns[limit:]:
            deferred.append(a.slot)
            State.give_back(a.srv, a.gpu_ids)
        assigns = assigns[:limit]
    placements = [
        Placement(
            chute_id=a.slot.chute.chute_id,
            server_id=a.srv.view.server_id,
            gpu_ids=tuple(a.gpu_ids),
            value=a.value,
            reason=_reason(a),
            job_id=a.slot.job_id,
        )
        for a in assigns
    ]
    preemptions = plan_preemptions(ctx, unplaced, placements) if policy.preemption.enabled else []
    decisions = chute_decisions(ctx, placements, unplaced + deferred)
    if deferred:
        decisions = mark_round_limit(decisions, deferred)
    return RoundPlan(
        placements=tuple(placements),
        preemptions=tuple(preemptions),
        decisions=decisions,
        server_rejections=dict(ctx.server_rejections),
        gpu_prices={s.view.server_id: s.price for s in ctx.servers if s.price > 0},
    )
