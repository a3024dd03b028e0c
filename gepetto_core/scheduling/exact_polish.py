"""Exact re-assignment of a small round's 1-GPU slots (a min-cost flow), and the multi-GPU
relocations it makes worth trying."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gepetto_core.scheduling.assignment import (
    EPS,
    Assign,
    State,
    group_bound,
    slot_value,
    values_on,
)
from gepetto_core.scheduling.round_state import RoundState, Slot, Srv, Tier
from gepetto_core.scheduling.transport import Arc, max_profit_transport

# Per server index: the 1-GPU units on it, as (value, chute row).
Units = list[list[tuple[float, int]]]


@dataclass(slots=True)
class OneGpuProblem:
    """The transport problem of the ordinary 1-GPU slots: one supply row per chute (its slots),
    one capacity per server (free GPUs, within its pull limit), one arc per profitable pair."""

    chute_slots: list[list[Slot]]  # row c: chute c's 1-GPU slots
    supply: list[int]
    capacity: list[int]  # by position in ctx.servers; relocations change it
    arcs: list[Arc]
    values: dict[tuple[int, int], float]  # (chute row, server index) -> value
    homes: list[list[tuple[float, int]]]  # per chute row: (value, server index), best first


class Relocation(NamedTuple):
    """A multi-GPU slot to `target` (from `current`, None: unplaced), worth `gain` on its own."""

    gain: float
    order: int  # ties keep the order the trials were found in
    slot: Slot
    current: Assign | None
    target: Srv
    value: float


class Move(NamedTuple):
    slot: Slot
    current: Assign | None
    target: Srv
    value: float


def _ordinary_one_gpu(slot: Slot) -> bool:
    return slot.tier == Tier.ORDINARY and slot.chute.gpu_count == 1


def _ordinary_multi_gpu(slot: Slot) -> bool:
    return slot.tier == Tier.ORDINARY and slot.chute.gpu_count > 1


def exact_polish(
    ctx: RoundState, placed: list[Assign], unplaced: list[Slot], floor: float
) -> tuple[list[Assign], list[Slot]]:
    """Small rounds only (at most `PlanPolicy.exact_pairs_limit` 1-GPU pairs):

    1. re-assign every ordinary 1-GPU slot exactly (`transport.max_profit_transport`) around
       the fixed multi-GPU, job and whitelisted placements;
    2. try the most promising relocations of ordinary multi-GPU slots (a better server, or a
       first one for an unplaced slot), each judged by re-solving step 1, keeping improvements.
    """
    server_index = {srv: i for i, srv in enumerate(ctx.servers)}
    movable = [a for a in placed if _ordinary_one_gpu(a.slot)]
    problem = _one_gpu_problem(ctx, movable, unplaced, floor, server_index)
    if problem is None:
        return placed, unplaced
    flows = max_profit_transport(problem.supply, problem.capacity, problem.arcs)
    trials = _relocation_trials(ctx, placed, unplaced, problem.capacity, server_index, floor)
    moves = _choose_moves(ctx, trials, problem, _units(ctx, problem, flows), server_index)
    if moves:
        flows = max_profit_transport(problem.supply, problem.capacity, problem.arcs)
    flow_total = sum(problem.values[k] * f for k, f in flows.items())
    gained = sum(m.value - (m.current.value if m.current is not None else 0.0) for m in moves)
    if gained + flow_total <= sum(a.value for a in movable) + EPS:
        return placed, unplaced
    return _apply(ctx, placed, unplaced, movable, moves, problem, flows)


def _one_gpu_problem(
    ctx: RoundState,
    movable: list[Assign],
    unplaced: list[Slot],
    floor: float,
    server_index: dict[Srv, int],
) -> OneGpuProblem | None:
    """The 1-GPU problem with the movable placements taken back, or None when it has more
    profitable pairs than `exact_pairs_limit` (counted first, cheaply; arcs built only when
    the round is small)."""
    by_chute: dict[str, list[Slot]] = {}
    for slot in [a.slot for a in movable] + unplaced:
        if _ordinary_one_gpu(slot):
            by_chute.setdefault(slot.chute.chute_id, []).append(slot)
    capacity = [min(srv.free, srv.pulls_left) for srv in ctx.servers]
    for a in movable:
        capacity[server_index[a.srv]] += 1
    chute_slots = list(by_chute.values())
    limit = ctx.policy.exact_pairs_limit
    chute_values: list[list[tuple[Srv, float]]] = []
    pairs = 0
    cheapest = {grp: min(s.cost for s in grp.servers) for grp in ctx.groups.values()}
    for slots in chute_slots:
        first = slots[0]
        servers = [
            srv
            for grp in first.groups
            if group_bound(first, grp, cheapest[grp]) > floor
            for srv in grp.servers
        ]
        if first.blocked:
            servers = [srv for srv in servers if srv.view.server_id not in first.blocked]
        values_here = values_on(first, servers)
        good = [(srv, v) for srv, v in zip(servers, values_here, strict=True) if v > floor]
        pairs += len(good)
        if pairs > limit:
            return None
        chute_values.append(good)
    arcs = [Arc(c, server_index[srv], v) for c, good in enumerate(chute_values) for srv, v in good]
    homes: list[list[tuple[float, int]]] = [[] for _ in chute_slots]
    for arc in arcs:
        homes[arc.chute].append((arc.value, arc.server))
    for lst in homes:
        lst.sort(reverse=True)
    return OneGpuProblem(
        chute_slots=chute_slots,
        supply=[len(s) for s in chute_slots],
        capacity=capacity,
        arcs=arcs,
        values={(a.chute, a.server): a.value for a in arcs},
        homes=homes,
    )


def _units(ctx: RoundState, problem: OneGpuProblem, flows: dict[tuple[int, int], int]) -> Units:
    """The exact 1-GPU assignment for the current multi-GPU layout, as units per server."""
    units: Units = [[] for _ in ctx.servers]
    for (c, i), f in flows.items():
        units[i].extend([(problem.values[(c, i)], c)] * f)
    return units


def _relocation_trials(
    ctx: RoundState,
    placed: list[Assign],
    unplaced: list[Slot],
    capacity: list[int],
    server_index: dict[Srv, int],
    floor: float,
) -> list[Relocation]:
    """Every multi-GPU relocation worth more than the slot's current value, best first."""
    big_placed = [a for a in placed if _ordinary_multi_gpu(a.slot)]
    big_unplaced = [s for s in unplaced if _ordinary_multi_gpu(s)]
    trials: list[Relocation] = []
    for slot, cur in [(a.slot, a) for a in big_placed] + [(s, None) for s in big_unplaced]:
        g = slot.chute.gpu_count
        v_old = cur.value if cur is not None else 0.0
        for grp in slot.groups:
            for srv in grp.servers:
                if cur is not None and srv is cur.srv:
                    continue
                if capacity[server_index[srv]] < g:
                    continue
                if slot.blocked and srv.view.server_id in slot.blocked:
                    continue
                v = slot_value(slot, srv)
                if v > floor and v > v_old + EPS:
                    trials.append(Relocation(v - v_old, len(trials), slot, cur, srv, v))
    trials.sort(key=lambda t: (-t.gain, t.order))
    return trials


def _choose_moves(
    ctx: RoundState,
    trials: list[Relocation],
    problem: OneGpuProblem,
    units: Units,
    server_index: dict[Srv, int],
) -> list[Move]:
    """The first `exact_relocations` trials, each judged cheaply: the target's lowest 1-GPU
    units make room and move to the best server with a free GPU left (or are dropped). A trial
    that gains is kept, and `problem.capacity` and `units` follow it. A final exact flow only
    improves on this."""
    capacity = problem.capacity
    free = [capacity[i] - len(units[i]) for i in range(len(ctx.servers))]
    moves: dict[Slot, Move] = {}
    for trial in trials[: ctx.policy.exact_relocations]:
        slot, cur, srv = trial.slot, trial.current, trial.target
        if slot in moves:
            continue
        g = slot.chute.gpu_count
        t = server_index[srv]
        if capacity[t] < g:
            continue
        s_idx = server_index[cur.srv] if cur is not None else -1
        here = sorted(units[t])
        evicted = here[: max(0, g - free[t])]
        delta = trial.gain - sum(u[0] for u in evicted)
        trial_free = list(free)
        trial_free[t] = max(0, free[t] - g)
        if s_idx >= 0:
            trial_free[s_idx] += g
        rehomed: list[tuple[int, float, int]] = []
        for _, c in evicted:
            for value, i in problem.homes[c]:
                if i != t and trial_free[i] > 0:
                    trial_free[i] -= 1
                    rehomed.append((i, value, c))
                    delta += value
                    break
        if delta <= EPS:
            continue
        moves[slot] = Move(slot, cur, srv, trial.value)
        capacity[t] -= g
        units[t] = here[len(evicted) :]
        if s_idx >= 0:
            capacity[s_idx] += g
        for i, value, c in rehomed:
            units[i].append((value, c))
        free = [capacity[i] - len(units[i]) for i in range(len(ctx.servers))]
    return list(moves.values())


def _apply(
    ctx: RoundState,
    placed: list[Assign],
    unplaced: list[Slot],
    movable: list[Assign],
    moves: list[Move],
    problem: OneGpuProblem,
    flows: dict[tuple[int, int], int],
) -> tuple[list[Assign], list[Slot]]:
    """Give back the GPUs of every moved placement, then take them as the moves and the flow
    say; returns the new placements and the slots left unplaced."""
    moved = set(movable)
    for a in movable:
        State.give_back(a.srv, a.gpu_ids)
    for move in moves:
        if move.current is not None:
            moved.add(move.current)
            State.give_back(move.current.srv, move.current.gpu_ids)
    kept = [a for a in placed if a not in moved]
    for move in moves:
        gpu_ids = State.take(move.target, move.slot.chute.gpu_count)
        kept.append(Assign(move.slot, move.target, move.value, gpu_ids))
    left: dict[int, list[Slot]] = {c: list(slots) for c, slots in enumerate(problem.chute_slots)}
    for (c, i), f in sorted(flows.items()):
        srv = ctx.servers[i]
        for _ in range(f):
            kept.append(Assign(left[c].pop(), srv, problem.values[(c, i)], State.take(srv, 1)))
    now_placed = {a.slot for a in kept}
    rest = [s for s in unplaced if s not in now_placed and s.chute.gpu_count > 1]
    rest += [s for s in unplaced if s.chute.gpu_count == 1 and s.tier != Tier.ORDINARY]
    for slots in left.values():
        rest.extend(slots)
    return kept, rest
