"""Exact re-assignment of a small round's 1-GPU slots (a min-cost flow), and the multi-GPU
relocations it makes worth trying."""

from __future__ import annotations

from gepetto_core.scheduling.assignment import (
    EPS,
    Assign,
    State,
    group_bound,
    slot_value,
    values_on,
)
from gepetto_core.scheduling.context import Context, Slot, Srv
from gepetto_core.scheduling.transport import Arc, max_profit_transport


def exact_polish(
    ctx: Context, placed: list[Assign], unplaced: list[Slot], floor: float
) -> tuple[list[Assign], list[Slot]]:
    """Small rounds only (at most `PlanPolicy.exact_pairs_limit` 1-GPU pairs):

    1. re-assign every ordinary 1-GPU slot exactly (`transport.max_profit_transport`) around
       the fixed multi-GPU, job and whitelisted placements;
    2. try the most promising relocations of ordinary multi-GPU slots (a better server, or a
       first one for an unplaced slot), each judged by re-solving step 1, keeping improvements.
    """
    movable = [a for a in placed if a.slot.tier == 2 and a.slot.chute.gpu_count == 1]
    by_chute: dict[str, list[Slot]] = {}
    for slot in [a.slot for a in movable] + unplaced:
        if slot.tier == 2 and slot.chute.gpu_count == 1:
            by_chute.setdefault(slot.chute.chute_id, []).append(slot)
    srv_index = {id(srv): i for i, srv in enumerate(ctx.servers)}
    capacity = [min(srv.free, srv.pulls_left) for srv in ctx.servers]
    for a in movable:
        capacity[srv_index[id(a.srv)]] += 1
    chute_slots = list(by_chute.values())
    supply = [len(s) for s in chute_slots]
    limit = ctx.policy.exact_pairs_limit
    # Count the profitable pairs first (cheap), build the arcs only when the round is small.
    chute_values: list[list[tuple[Srv, float]]] = []
    pairs = 0
    cheapest = {id(grp): min(s.cost for s in grp.servers) for grp in ctx.groups.values()}
    for slots in chute_slots:
        first = slots[0]
        servers = [
            srv
            for grp in first.groups
            if group_bound(first, grp, cheapest[id(grp)]) > floor
            for srv in grp.servers
        ]
        if first.blocked:
            servers = [srv for srv in servers if srv.view.server_id not in first.blocked]
        values_here = values_on(first, servers)
        good = [(srv, v) for srv, v in zip(servers, values_here, strict=True) if v > floor]
        pairs += len(good)
        if pairs > limit:
            return placed, unplaced
        chute_values.append(good)
    arcs = [Arc(c, srv_index[id(srv)], v) for c, good in enumerate(chute_values) for srv, v in good]
    values = {(a.chute, a.server): a.value for a in arcs}
    by_chute_arcs: list[list[tuple[float, int]]] = [[] for _ in chute_slots]
    for arc in arcs:
        by_chute_arcs[arc.chute].append((arc.value, arc.server))
    for lst in by_chute_arcs:
        lst.sort(reverse=True)

    # The exact 1-GPU assignment for the current multi-GPU layout, as units per server.
    flows = max_profit_transport(supply, capacity, arcs)
    units: list[list[tuple[float, int]]] = [[] for _ in ctx.servers]
    for (c, i), f in flows.items():
        units[i].extend([(values[(c, i)], c)] * f)
    free = [capacity[i] - len(units[i]) for i in range(len(ctx.servers))]

    # Multi-GPU relocations, best first: (gain on its own, slot, current assign, target).
    big_placed = [a for a in placed if a.slot.tier == 2 and a.slot.chute.gpu_count > 1]
    big_unplaced = [s for s in unplaced if s.tier == 2 and s.chute.gpu_count > 1]
    trials: list[tuple[float, int, Slot, Assign | None, Srv, float]] = []
    for slot, cur in [(a.slot, a) for a in big_placed] + [(s, None) for s in big_unplaced]:
        g = slot.chute.gpu_count
        v_old = cur.value if cur is not None else 0.0
        for grp in slot.groups:
            for srv in grp.servers:
                if cur is not None and srv is cur.srv:
                    continue
                if capacity[srv_index[id(srv)]] < g:
                    continue
                if slot.blocked and srv.view.server_id in slot.blocked:
                    continue
                v = slot_value(slot, srv)
                if v > floor and v > v_old + EPS:
                    trials.append((v - v_old, len(trials), slot, cur, srv, v))
    trials.sort(key=lambda t: (-t[0], t[1]))
    # Each trial is judged cheaply: the target's lowest 1-GPU units make room and move to the
    # best server with a free GPU left (or are dropped). A final exact flow only improves on it.
    moves: dict[int, tuple[Slot, Assign | None, Srv, float]] = {}
    for gain, _, slot, cur, srv, v in trials[: ctx.policy.exact_relocations]:
        if id(slot) in moves:
            continue
        g = slot.chute.gpu_count
        t = srv_index[id(srv)]
        if capacity[t] < g:
            continue
        s_idx = srv_index[id(cur.srv)] if cur is not None else -1
        need = g - free[t]
        here = sorted(units[t])
        evicted = here[: max(0, need)]
        delta = gain - sum(u[0] for u in evicted)
        trial_free = list(free)
        trial_free[t] = max(0, free[t] - g)
        if s_idx >= 0:
            trial_free[s_idx] += g
        rehomed: list[tuple[int, float, int]] = []
        for _, c in evicted:
            for value, i in by_chute_arcs[c]:
                if i != t and trial_free[i] > 0:
                    trial_free[i] -= 1
                    rehomed.append((i, value, c))
                    delta += value
                    break
        if delta <= EPS:
            continue
        moves[id(slot)] = (slot, cur, srv, v)
        capacity[t] -= g
        units[t] = here[len(evicted) :]
        if s_idx >= 0:
            capacity[s_idx] += g
        for i, value, c in rehomed:
            units[i].append((value, c))
        free = [capacity[i] - len(units[i]) for i in range(len(ctx.servers))]
    if moves:
        flows = max_profit_transport(supply, capacity, arcs)
    best_flows = flows
    best_total = sum(values[k] * f for k, f in best_flows.items())
    gained = sum(m[3] - (m[1].value if m[1] is not None else 0.0) for m in moves.values())
    old_total = sum(a.value for a in movable)
    if gained + best_total <= old_total + EPS:
        return placed, unplaced

    moved = {id(a) for a in movable}
    for a in movable:
        State.give_back(a.srv, a.gpu_ids)
    for _slot, cur, _srv, _v in moves.values():
        if cur is not None:
            moved.add(id(cur))
            State.give_back(cur.srv, cur.gpu_ids)
    kept = [a for a in placed if id(a) not in moved]
    for slot, _cur, srv, v in moves.values():
        kept.append(Assign(slot, srv, v, State.take(srv, slot.chute.gpu_count)))
    left: dict[int, list[Slot]] = {c: list(slots) for c, slots in enumerate(chute_slots)}
    for (c, i), f in sorted(best_flows.items()):
        srv = ctx.servers[i]
        for _ in range(f):
            kept.append(Assign(left[c].pop(), srv, values[(c, i)], State.take(srv, 1)))
    now_placed = {id(a.slot) for a in kept}
    rest = [s for s in unplaced if id(s) not in now_placed and s.chute.gpu_count > 1]
    rest += [s for s in unplaced if s.chute.gpu_count == 1 and s.tier != 2]
    for slots in left.values():
        rest.extend(slots)
    return kept, rest
