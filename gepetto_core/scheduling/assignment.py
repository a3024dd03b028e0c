"""The working state of one planning round: what a slot is worth on a server, which server a
slot should take now, and the placements made so far (free GPUs per server, an index of
placements by server with an undo log so a change can be tried and reverted).

Every pass of the planner (`planner`, `local_search`, `repair`, `exact_polish`) works on these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gepetto_core.scheduling.round_state import Group, GroupKey, RoundState, Slot, Srv

EPS = 1e-9


@dataclass(eq=False, slots=True)
class Assign:
    slot: Slot
    srv: Srv
    value: float
    gpu_ids: list[str]


def slot_value(slot: Slot, srv: Srv) -> float:
    t = slot.terms
    q = srv.q
    if slot.pair_factor:
        q *= slot.pair_factor.get(srv.view.server_id, 1.0)
    return t.scale * q - t.cost_weight * srv.cost - t.offset


def group_bound(slot: Slot, grp: Group, cheapest: float) -> float:
    """An upper bound of `slot_value` on the servers of `grp` (whose lowest GPU cost is
    `cheapest`): a pass can skip a group whose bound is below the floor without valuing each
    server."""
    t = slot.terms
    if t.scale < 0 or t.cost_weight < 0:
        return math.inf
    # EPS: q * factor may round a hair above q_max * r_max.
    return t.scale * grp.q_max * slot.r_max - t.cost_weight * cheapest - t.offset + EPS


def values_on(slot: Slot, servers: list[Srv]) -> list[float]:
    """`slot_value` on each server, computed in one comprehension (the hot path of the
    local search)."""
    t = slot.terms
    scale, cw, off = t.scale, t.cost_weight, t.offset
    factors = slot.pair_factor
    if factors:
        return [
            scale * s.q * factors.get(s.view.server_id, 1.0) - cw * s.cost - off for s in servers
        ]
    return [scale * s.q - cw * s.cost - off for s in servers]


# The best server of one free-GPU list of a group, for `search` to choose among: (value minus
# the server's GPU opportunity cost, free GPUs the server keeps, server, value). A plain tuple:
# `search` is the planner's hot path (no object built per candidate).
Candidate = tuple[float, int, Srv, float]


def search(
    slot: Slot,
    floor: float,
    window: float,
    use_prices: bool = True,
    per_group: dict[GroupKey, float] | None = None,
) -> tuple[Srv, float] | None:
    """The server this slot should take now, and its value there; None if nothing fits.

    Servers are compared by value minus their GPU opportunity cost (`Srv.price`); those within
    `window` of the best are ties, won by the tightest fit. `per_group`, when given, receives
    the slot's best value in each group."""
    cands: list[Candidate] = []
    for grp in slot.groups:
        group_best = _search_group(slot, grp, floor, use_prices, cands)
        if per_group is not None and group_best > -math.inf:
            per_group[grp.key] = group_best
    if not cands:
        return None
    top = max(adjusted for adjusted, _, _, _ in cands)
    tol = window * abs(top)
    # Ties (within the window) go to the tightest fit, then to the higher adjusted value.
    pick = min((c for c in cands if c[0] >= top - tol), key=lambda c: (c[1], -c[0]))
    return pick[2], pick[3]


def _search_group(
    slot: Slot, grp: Group, floor: float, use_prices: bool, cands: list[Candidate]
) -> float:
    """Appends to `cands` the best server of each of the group's free-GPU lists that can take
    the slot; returns the slot's best value in the group (-inf: none). The lists are sorted by
    cost (or by reliability when cost is sunk), so each is read only while a server further on
    could still do better."""
    g = slot.chute.gpu_count
    t = slot.terms
    scale, cw, off = t.scale, t.cost_weight, t.offset
    blocked = slot.blocked
    factors = slot.pair_factor
    per_server = bool(blocked or factors)  # server ids only matter with these
    me = slot
    r_max = slot.r_max
    qb = grp.q_max * r_max
    by_q = grp.by_q
    min_pg = grp.min_price * g if use_prices and me not in grp.owners else 0.0
    group_best = -math.inf
    for free, lst in grp.by_free.items():
        if free < g:
            continue
        lb: Srv | None = None
        lb_adj = -math.inf
        lb_v = 0.0
        for srv in lst:
            cost = srv.cost
            # by_q: sorted by q, cost weight 0.
            bound = scale * srv.q * r_max - off if by_q else scale * qb - cw * cost - off
            if bound <= floor or bound - min_pg <= lb_adj:
                break  # sorted by cost (or q): nobody further on can do better
            q = srv.q
            if per_server:
                sid = srv.view.server_id
                if blocked and sid in blocked:
                    continue
                if factors:
                    q *= factors.get(sid, 1.0)
            v = scale * q - cw * cost - off
            if v <= floor:
                continue
            adj = v - srv.price * g if use_prices and srv.price_owner is not me else v
            if adj > lb_adj:
                lb, lb_adj, lb_v = srv, adj, v
            if v > group_best:
                group_best = v
        if lb is not None:
            cands.append((lb_adj, free - g, lb, lb_v))
    return group_best


class State:
    """Free GPUs and pull slots per server, restorable between greedy passes."""

    def __init__(self, ctx: RoundState) -> None:
        self.ctx = ctx
        self.initial = {s: (list(s.free_ids), s.pulls_left) for s in ctx.servers}

    def reset(self) -> None:
        for grp in self.ctx.groups.values():
            grp.by_free.clear()
        for s in self.ctx.servers:
            ids, pulls = self.initial[s]
            s.set_free_ids(list(ids))
            s.pulls_left = pulls
            assert s.group is not None
            s.group.add(s)

    @staticmethod
    def take(srv: Srv, g: int) -> list[str]:
        grp = srv.group
        assert grp is not None
        grp.remove(srv)
        ids = srv.free_ids[:g]
        srv.set_free_ids(srv.free_ids[g:])
        srv.pulls_left -= 1
        grp.add(srv)
        return ids

    @staticmethod
    def give_back(srv: Srv, ids: list[str]) -> None:
        grp = srv.group
        assert grp is not None
        grp.remove(srv)
        srv.set_free_ids(srv.free_ids + ids)
        srv.pulls_left += 1
        grp.add(srv)


class Book:
    """Placements indexed by server, with an undo log so a repair can be tried and reverted."""

    def __init__(self, placed: list[Assign]) -> None:
        # Insertion-ordered like the list it came from, with O(1) removal.
        self._placed: dict[Assign, None] = dict.fromkeys(placed)
        self.on: dict[Srv, list[Assign]] = {}
        # How many placements each slot has (0 or 1), for O(1) "is it placed?" checks.
        self.count: dict[Slot, int] = {}
        for a in placed:
            self.on.setdefault(a.srv, []).append(a)
            self.count[a.slot] = self.count.get(a.slot, 0) + 1
        self.log: list[tuple[str, Assign]] = []
        # Bumped whenever a server's placements change (invalidates `eviction_cost`).
        self.version: dict[Srv, int] = {}
        self._evict_cache: dict[tuple[Srv, int], tuple[int, int, float]] = {}

    def eviction_cost(self, srv: Srv, g: int) -> tuple[int, float]:
        """(GPUs our new placements hold on `srv`, value lost by evicting the lowest-density
        ones until `g` GPUs are free), cached until the server's placements change."""
        key = (srv, g)
        version = self.version.get(srv, 0)
        hit = self._evict_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        mine = self.on.get(srv, [])
        held = sum(a.slot.chute.gpu_count for a in mine)
        need = g - srv.free
        lost = 0.0
        for a in sorted(mine, key=lambda a: a.value / a.slot.chute.gpu_count):
            if need <= 0:
                break
            lost += a.value
            need -= a.slot.chute.gpu_count
        self._evict_cache[key] = (version, held, lost)
        return held, lost

    @property
    def placed(self) -> list[Assign]:
        return list(self._placed)

    def holds(self, a: Assign) -> bool:
        return a in self._placed

    def is_placed(self, slot: Slot) -> bool:
        return self.count.get(slot, 0) > 0

    def _index(self, a: Assign) -> None:
        self.version[a.srv] = self.version.get(a.srv, 0) + 1
        self._placed[a] = None
        self.on.setdefault(a.srv, []).append(a)
        self.count[a.slot] = self.count.get(a.slot, 0) + 1

    def _unindex(self, a: Assign) -> None:
        self.version[a.srv] = self.version.get(a.srv, 0) + 1
        del self._placed[a]
        self.on[a.srv].remove(a)
        self.count[a.slot] -= 1

    def add(self, slot: Slot, srv: Srv, value: float) -> Assign:
        a = Assign(slot, srv, value, State.take(srv, slot.chute.gpu_count))
        self._index(a)
        self.log.append(("add", a))
        return a

    def drop(self, a: Assign) -> None:
        State.give_back(a.srv, a.gpu_ids)
        self._unindex(a)
        self.log.append(("drop", a))

    def undo_to(self, mark: int) -> None:
        while len(self.log) > mark:
            op, a = self.log.pop()
            if op == "add":
                State.give_back(a.srv, a.gpu_ids)
                self._unindex(a)
            else:
                a.gpu_ids = State.take(a.srv, a.slot.chute.gpu_count)
                self._index(a)
