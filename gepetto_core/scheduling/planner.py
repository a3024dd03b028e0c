"""The batch planner: one round places as many instances as are worth placing, fleet-wide.

Algorithm (spec `scheduling.md` §4.2, measured against the LP bound by `bench/bench_planner.py`):

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

import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter

from gepetto_core.scheduling.context import Context, GroupKey, Slot, Srv, build_context
from gepetto_core.scheduling.plan import ChuteDecision, Placement, Plan
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.rules import (
    Reason,
    Rejection,
    compatibility_rejection,
    pair_rejection,
)
from gepetto_core.scheduling.snapshot import ChuteView, Snapshot
from gepetto_core.scheduling.transport import Arc, max_profit_transport
from gepetto_core.scheduling.value import MIN_COST

_EPS = 1e-9
# Eviction targets tried per unplaced slot in the repair pass (the cheapest evictions first).
# Trying the next two as well changed nothing on the benchmark's 80 rounds and cost 2 ms.
_REPAIR_TRIALS = 1


@dataclass(eq=False, slots=True)
class Assign:
    slot: Slot
    srv: Srv
    value: float
    gpu_ids: list[str]


def slot_value(slot: Slot, srv: Srv) -> float:
    t = slot.terms
    if t.ratio:
        return t.scale / max(srv.cost, MIN_COST)
    q = srv.q
    if slot.pair_factor:
        q *= slot.pair_factor.get(srv.view.server_id, 1.0)
    return t.scale * q - t.cost_weight * srv.cost - t.offset


def search(
    slot: Slot,
    floor: float,
    window: float,
    use_prices: bool = True,
    per_group: dict[GroupKey, float] | None = None,
) -> tuple[Srv, float] | None:
    """The server this slot should take now, and its value there; None if nothing fits.

    Servers are compared by value minus their GPU opportunity cost (`Srv.price`); those within
    `window` of the best are ties, won by the tightest fit."""
    g = slot.chute.gpu_count
    t = slot.terms
    scale, cw, ratio, off = t.scale, t.cost_weight, t.ratio, t.offset
    blocked = slot.blocked
    factors = slot.pair_factor
    per_server = bool(blocked or factors)  # server ids only matter with these
    me = id(slot)
    cands: list[tuple[float, int, Srv, float]] = []
    r_max = slot.r_max
    for grp in slot.groups:
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
                if ratio:
                    bound = scale / (cost if cost > MIN_COST else MIN_COST)
                elif by_q:  # sorted by q, cost weight 0
                    bound = scale * srv.q * r_max - off
                else:
                    bound = scale * qb - cw * cost - off
                if bound <= floor or bound - min_pg <= lb_adj:
                    break  # sorted by cost (or q): nobody further on can do better
                q = srv.q
                if per_server:
                    sid = srv.view.server_id
                    if blocked and sid in blocked:
                        continue
                    if factors:
                        q *= factors.get(sid, 1.0)
                v = bound if ratio else scale * q - cw * cost - off
                if v <= floor:
                    continue
                adj = v - srv.price * g if use_prices and srv.price_owner != me else v
                if adj > lb_adj:
                    lb, lb_adj, lb_v = srv, adj, v
                if v > group_best:
                    group_best = v
            if lb is not None:
                cands.append((lb_adj, free - g, lb, lb_v))
        if per_group is not None and group_best > -math.inf:
            per_group[grp.key] = group_best
    if not cands:
        return None
    top = max(c[0] for c in cands)
    tol = window * abs(top)
    pick = min((c for c in cands if c[0] >= top - tol), key=lambda c: (c[1], -c[0]))
    return pick[2], pick[3]


class _State:
    """Free GPUs and pull slots per server, restorable between greedy passes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.initial = {id(s): (list(s.free_ids), s.pulls_left) for s in ctx.servers}

    def reset(self) -> None:
        for grp in self.ctx.groups.values():
            grp.by_free.clear()
        for s in self.ctx.servers:
            ids, pulls = self.initial[id(s)]
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


def _greedy(slots: list[Slot], floor: float, window: float) -> tuple[list[Assign], list[Slot]]:
    placed: list[Assign] = []
    unplaced: list[Slot] = []
    for slot in slots:
        found = search(slot, floor, window)
        if found is None:
            unplaced.append(slot)
            continue
        srv, v = found
        placed.append(Assign(slot, srv, v, _State.take(srv, slot.chute.gpu_count)))
    return placed, unplaced


def _prices(
    ctx: Context,
    placed: list[Assign],
    unplaced: list[Slot],
    group_values: dict[int, dict[GroupKey, float]],
) -> dict[int, tuple[float, int]]:
    """Per-GPU opportunity cost of each server, from what a pass denied other slots.

    - A server is priced at the best value per GPU of a turned-away slot it could have hosted
      on its own (enough free GPUs at the start of the round, not at the end): this prices
      scarce GPU types and the empty boxes 8-GPU chutes need.
    - A slot that ended up on a worse server than its best one prices its best server at what
      it lost per GPU (like a bid in an auction)."""
    prices: dict[int, tuple[float, int]] = {}
    for a in placed:
        best = a.slot.best_server
        if best is not None and best is not a.srv and a.slot.best_value is not None:
            regret = (a.slot.best_value - a.value) / a.slot.chute.gpu_count
            if regret > prices.get(best.idx, (0.0, 0))[0]:
                prices[best.idx] = (regret, id(a.slot))
    demand: dict[tuple[GroupKey, int], tuple[float, int]] = {}
    for slot in unplaced:
        g = slot.chute.gpu_count
        values = group_values.get(id(slot), {})
        for key, v in values.items():
            density = v / g
            if density > demand.get((key, g), (0.0, 0))[0]:
                demand[(key, g)] = (density, id(slot))
    if not demand:
        return prices
    for grp in ctx.groups.values():
        levels = [(g, d) for (key, g), d in demand.items() if key == grp.key]
        # Only a group with no room left for that size turned the slot away.
        levels = [(g, d) for g, d in levels if not any(f >= g for f in grp.by_free)]
        if not levels:
            continue
        for srv in grp.servers:
            p = prices.get(srv.idx, (0.0, 0))
            for g, d in levels:
                if srv.initial_free >= g and d[0] > p[0]:
                    p = d
            if p[0] > 0:
                prices[srv.idx] = p
    return prices


def _apply_prices(ctx: Context, prices: dict[int, tuple[float, int]]) -> None:
    for srv in ctx.servers:
        srv.price, srv.price_owner = prices.get(srv.idx, (0.0, 0))
    for grp in ctx.groups.values():
        grp.min_price = min((s.price for s in grp.servers), default=0.0)
        grp.owners = {s.price_owner for s in grp.servers if s.price > 0}


class _Book:
    """Placements indexed by server, with an undo log so a repair can be tried and reverted."""

    def __init__(self, placed: list[Assign]) -> None:
        # Insertion-ordered like the list it came from, with O(1) removal.
        self._placed: dict[int, Assign] = {id(a): a for a in placed}
        self.on: dict[int, list[Assign]] = {}
        # How many placements each slot has (0 or 1), for O(1) "is it placed?" checks.
        self.count: dict[int, int] = {}
        for a in placed:
            self.on.setdefault(id(a.srv), []).append(a)
            self.count[id(a.slot)] = self.count.get(id(a.slot), 0) + 1
        self.log: list[tuple[str, Assign]] = []
        # Bumped whenever a server's placements change (invalidates `eviction_cost`).
        self.version: dict[int, int] = {}
        self._evict_cache: dict[tuple[int, int], tuple[int, int, float]] = {}

    def eviction_cost(self, srv: Srv, g: int) -> tuple[int, float]:
        """(GPUs our new placements hold on `srv`, value lost by evicting the lowest-density
        ones until `g` GPUs are free), cached until the server's placements change."""
        key = (id(srv), g)
        version = self.version.get(id(srv), 0)
        hit = self._evict_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        mine = self.on.get(id(srv), [])
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
        return list(self._placed.values())

    def holds(self, a: Assign) -> bool:
        return id(a) in self._placed

    def is_placed(self, slot: Slot) -> bool:
        return self.count.get(id(slot), 0) > 0

    def _index(self, a: Assign) -> None:
        self.version[id(a.srv)] = self.version.get(id(a.srv), 0) + 1
        self._placed[id(a)] = a
        self.on.setdefault(id(a.srv), []).append(a)
        self.count[id(a.slot)] = self.count.get(id(a.slot), 0) + 1

    def _unindex(self, a: Assign) -> None:
        self.version[id(a.srv)] = self.version.get(id(a.srv), 0) + 1
        del self._placed[id(a)]
        self.on[id(a.srv)].remove(a)
        self.count[id(a.slot)] -= 1

    def add(self, slot: Slot, srv: Srv, value: float) -> Assign:
        a = Assign(slot, srv, value, _State.take(srv, slot.chute.gpu_count))
        self._index(a)
        self.log.append(("add", a))
        return a

    def drop(self, a: Assign) -> None:
        _State.give_back(a.srv, a.gpu_ids)
        self._unindex(a)
        self.log.append(("drop", a))

    def undo_to(self, mark: int) -> None:
        while len(self.log) > mark:
            op, a = self.log.pop()
            if op == "add":
                _State.give_back(a.srv, a.gpu_ids)
                self._unindex(a)
            else:
                a.gpu_ids = _State.take(a.srv, a.slot.chute.gpu_count)
                self._index(a)


def _try_evict(
    book: _Book, u: Slot, srv: Srv, v: float, floor: float, window: float
) -> float | None:
    """Place `u` on `srv` by evicting its cheapest new placements, which then look for room
    elsewhere. Returns the net gain, leaving the change applied (None: not possible)."""
    g = u.chute.gpu_count
    need = g - srv.free
    lost = 0.0
    for a in sorted(book.on.get(id(srv), []), key=lambda a: a.value / a.slot.chute.gpu_count):
        if need <= 0 and srv.pulls_left > 0:
            break
        if a.slot.tier < u.tier:
            continue  # never displace a job or a whitelisted chute for less
        book.drop(a)
        lost += a.value
        need -= a.slot.chute.gpu_count
    if need > 0 or srv.pulls_left <= 0:
        return None
    evicted = [a for op, a in book.log if op == "drop" and a.srv is srv]
    book.add(u, srv, v)
    gain = v - lost
    for a in evicted:
        if book.is_placed(a.slot):
            continue
        found = search(a.slot, floor, window, use_prices=False)
        if found is not None:
            book.add(a.slot, found[0], found[1])
            gain += found[1]
    return gain


def _repair(
    placed: list[Assign], unplaced: list[Slot], floor: float, window: float, budget: int
) -> tuple[list[Assign], list[Slot]]:
    """Give unplaced slots room by evicting lower-value new placements (which may move)."""
    book = _Book(placed)
    min_density: dict[GroupKey, float] = {}
    for a in placed:
        assert a.srv.group is not None
        d = a.value / a.slot.chute.gpu_count
        key = a.srv.group.key
        if d < min_density.get(key, math.inf):
            min_density[key] = d
    tried = 0
    hopeless: set[str] = set()  # chutes whose previous slot found no gainful eviction
    # (groups, gpu_count) -> best value of a slot without pair evidence that found none: a
    # later one like it is worth less everywhere (slots come by density), so it finds none too.
    hopeless_like: dict[tuple[tuple[int, ...], int], float] = {}
    for u in unplaced:
        if tried >= budget:
            break
        if book.is_placed(u) or u.chute.chute_id in hopeless:
            continue
        plain = not u.pair_factor and not u.blocked
        sig = (tuple(id(grp) for grp in u.groups), u.chute.gpu_count)
        if plain and (u.best_value or 0.0) <= hopeless_like.get(sig, -math.inf):
            continue
        g = u.chute.gpu_count
        need_density = (u.best_value or 0.0) / g
        groups = [grp for grp in u.groups if min_density.get(grp.key, math.inf) < need_density]
        if not groups:
            continue
        tried += 1
        # Rank servers by what eviction would cost before anybody moves; try the best few.
        options: list[tuple[float, Srv, float]] = []
        for grp in groups:
            for srv in grp.servers:
                if u.blocked and srv.view.server_id in u.blocked:
                    continue
                held, lost = book.eviction_cost(srv, g)
                if srv.free + held < g:
                    continue
                v = slot_value(u, srv)
                if v <= floor:
                    continue
                options.append((v - lost, srv, v))
        options.sort(key=lambda o: -o[0])
        best: tuple[float, Srv, float] | None = None
        for _, srv, v in options[:_REPAIR_TRIALS]:
            mark = len(book.log)
            gain = _try_evict(book, u, srv, v, floor, window)
            book.undo_to(mark)
            if gain is not None and gain > _EPS and (best is None or gain > best[0]):
                best = (gain, srv, v)
        if best is not None:
            _try_evict(book, u, best[1], best[2], floor, window)
            book.log.clear()
        else:
            hopeless.add(u.chute.chute_id)
            if plain:
                hopeless_like[sig] = max(hopeless_like.get(sig, -math.inf), u.best_value or 0.0)
    still = [s for s in unplaced if not book.is_placed(s)]
    return book.placed, still


def values_on(slot: Slot, servers: list[Srv]) -> list[float]:
    """`slot_value` on each server, computed in one comprehension (the hot path of the
    local search)."""
    t = slot.terms
    scale, cw, off = t.scale, t.cost_weight, t.offset
    if t.ratio:
        return [scale / max(s.cost, MIN_COST) for s in servers]
    factors = slot.pair_factor
    if factors:
        return [
            scale * s.q * factors.get(s.view.server_id, 1.0) - cw * s.cost - off for s in servers
        ]
    return [scale * s.q - cw * s.cost - off for s in servers]


@dataclass(slots=True)
class _Rankings:
    """Servers ranked by a slot's value, computed once per round: shared by chute class
    (`orders`: groups, blocked servers, ratio model) or per chute (`values`)."""

    orders: dict[tuple[tuple[int, ...], frozenset[str], bool], list[Srv]]
    values: dict[str, list[tuple[float, Srv]]]


def _targets(a: Assign, limit: int, cache: _Rankings) -> list[tuple[float, Srv]]:
    """Servers where `a` would be worth more than where it is, best first (ties in server
    order). A chute's values do not change during a round, so its servers are ranked once;
    when the value only rises with reliability or only falls with cost (no pair evidence), that
    ranking is the same for every chute with the same groups and is shared."""
    slot = a.slot
    t = slot.terms
    floor = a.value + _EPS
    out: list[tuple[float, Srv]] = []
    if not slot.pair_factor and (t.ratio or t.cost_weight == 0):
        key = (tuple(id(grp) for grp in slot.groups), slot.blocked, t.ratio)
        order = cache.orders.get(key)
        if order is None:
            order = [srv for grp in slot.groups for srv in grp.servers]
            if slot.blocked:
                order = [srv for srv in order if srv.view.server_id not in slot.blocked]
            if t.ratio:
                order.sort(key=lambda srv: max(srv.cost, MIN_COST))
            else:
                order.sort(key=lambda srv: -srv.q)
            cache.orders[key] = order
        scale, off = t.scale, t.offset
        for srv in order:
            v = scale / max(srv.cost, MIN_COST) if t.ratio else scale * srv.q - off
            if v <= floor or len(out) >= limit:
                break
            if srv is not a.srv:
                out.append((v, srv))
        return out
    ranked = cache.values.get(slot.chute.chute_id)
    if ranked is None:
        servers = [srv for grp in slot.groups for srv in grp.servers]
        if slot.blocked:
            servers = [srv for srv in servers if srv.view.server_id not in slot.blocked]
        ranked = list(zip(values_on(slot, servers), servers, strict=True))
        ranked.sort(key=itemgetter(0), reverse=True)  # stable: ties keep server order
        cache.values[slot.chute.chute_id] = ranked
    for v, srv in ranked:
        if v <= floor or len(out) >= limit:
            break
        if srv is not a.srv:
            out.append((v, srv))
    return out


def _move(book: _Book, a: Assign, target: Srv, v_target: float, floor: float) -> float | None:
    """Move `a` to `target` (where it is worth `v_target`), sending the occupants it displaces
    to the server it leaves. Returns the gain with the change applied, or None (nothing
    changed)."""
    g = a.slot.chute.gpu_count
    home = a.srv
    need = g - target.free
    room = home.free + g  # what the home server offers once `a` has left
    victims: list[tuple[Assign, float]] = []
    gain = v_target - a.value
    if need > 0:
        tier = a.slot.tier
        home_group = home.group
        home_id = home.view.server_id
        options: list[tuple[float, float, Assign, float]] = []  # (loss per GPU, loss, b, vb)
        for b in book.on.get(id(target), ()):
            other = b.slot
            gb = other.chute.gpu_count
            if (
                gb > room
                or other.tier < tier
                or home_group not in other.groups
                or (other.blocked and home_id in other.blocked)
            ):
                continue
            vb = slot_value(other, home)
            if vb > floor:
                loss = b.value - vb
                options.append((loss / gb, loss, b, vb))
        options.sort(key=itemgetter(0))
        used = 0
        for _, loss, b, vb in options:
            gb = b.slot.chute.gpu_count
            if used + gb > room:
                continue
            victims.append((b, vb))
            gain -= loss
            used += gb
            if used >= need:
                break
        if used < need:
            return None
    if gain <= _EPS or target.pulls_left + len(victims) <= 0:
        return None
    book.drop(a)
    for b, _ in victims:
        book.drop(b)
    book.add(a.slot, target, v_target)
    for b, vb in victims:
        book.add(b.slot, home, vb)
    return gain


def _improve(placed: list[Assign], floor: float, budget: int, rounds: int = 2) -> list[Assign]:
    """Local search: move placed slots to servers where they are worth more, swapping the
    displaced occupants back to the server they leave, then let multi-GPU placements trade
    boxes (`_swap_boxes`), while that raises the total."""
    book = _Book(placed)
    cache = _Rankings({}, {})
    for round_no in range(rounds):
        moved = 0
        regret = [
            a
            for a in book.placed
            if a.slot.best_value is not None and a.value < a.slot.best_value - _EPS
        ]
        regret.sort(key=lambda a: (a.value - (a.slot.best_value or 0.0)) / a.slot.chute.gpu_count)
        for a in regret[:budget]:
            if not book.holds(a):
                continue  # it moved already as somebody's victim
            for v, target in _targets(a, 4, cache):
                if _move(book, a, target, v, floor) is not None:
                    moved += 1
                    break
        if round_no == 0:
            moved += _swap_boxes(book, floor)
        book.log.clear()
        if not moved:
            break
    return book.placed


def _swap_boxes(book: _Book, floor: float, tries: int = 3) -> int:
    """Move a multi-GPU placement to a server where it is worth a little less, when the
    occupants it displaces there are worth more on the server it leaves (an unreliable box is
    better spent on one big deploy than on many small ones: fewer deploys to fail). The
    regret moves of `_improve` never try this: the big placement already sits on its best
    server. Returns how many moved."""
    moved = 0
    big = [a for a in book.placed if a.slot.chute.gpu_count > 1 and a.slot.tier == 2]
    # Servers holding placements of ours, per (groups, blocked servers) of a chute.
    holding: dict[tuple[tuple[int, ...], frozenset[str]], list[Srv]] = {}
    for a in big:
        if not book.holds(a):
            continue  # moved already as somebody's victim
        key = (tuple(id(grp) for grp in a.slot.groups), a.slot.blocked)
        occupied = holding.get(key)
        if occupied is None:
            blocked = a.slot.blocked
            occupied = holding[key] = [
                srv
                for grp in a.slot.groups
                for srv in grp.servers
                if book.on.get(id(srv)) and not (blocked and srv.view.server_id in blocked)
            ]
        servers = [srv for srv in occupied if srv is not a.srv]
        values = values_on(a.slot, servers)
        worse = [(v, i) for i, v in enumerate(values) if v < a.value]
        # The smallest loss first: the displaced occupants have the least to make up.
        for v, i in heapq.nlargest(tries, worse):
            if _move(book, a, servers[i], v, floor) is not None:
                moved += 1
                break
    return moved


def _exact_polish(
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
    for slots in chute_slots:
        first = slots[0]
        servers = [srv for grp in first.groups for srv in grp.servers]
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
                if v > floor and v > v_old + _EPS:
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
        if delta <= _EPS:
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
    if gained + best_total <= old_total + _EPS:
        return placed, unplaced

    moved = {id(a) for a in movable}
    for a in movable:
        _State.give_back(a.srv, a.gpu_ids)
    for _slot, cur, _srv, _v in moves.values():
        if cur is not None:
            moved.add(id(cur))
            _State.give_back(cur.srv, cur.gpu_ids)
    kept = [a for a in placed if id(a) not in moved]
    for slot, _cur, srv, v in moves.values():
        kept.append(Assign(slot, srv, v, _State.take(srv, slot.chute.gpu_count)))
    left: dict[int, list[Slot]] = {c: list(slots) for c, slots in enumerate(chute_slots)}
    for (c, i), f in sorted(best_flows.items()):
        srv = ctx.servers[i]
        for _ in range(f):
            kept.append(Assign(left[c].pop(), srv, values[(c, i)], _State.take(srv, 1)))
    now_placed = {id(a.slot) for a in kept}
    rest = [s for s in unplaced if id(s) not in now_placed and s.chute.gpu_count > 1]
    rest += [s for s in unplaced if s.chute.gpu_count == 1 and s.tier != 2]
    for slots in left.values():
        rest.extend(slots)
    return kept, rest


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def _solve(ctx: Context) -> tuple[list[Assign], list[Slot]]:
    policy = ctx.policy
    floor = policy.min_value
    window = policy.best_fit_window
    state = _State(ctx)

    # Each slot's best value on the empty fleet gives its density and per-group values.
    group_values: dict[int, dict[GroupKey, float]] = {}
    best_cache: dict[str, tuple[tuple[Srv, float] | None, dict[GroupKey, float]]] = {}
    slots: list[Slot] = []
    no_room: list[Slot] = []
    for slot in ctx.slots:
        cid = slot.chute.chute_id
        if cid not in best_cache:
            per_group: dict[GroupKey, float] = {}
            best_cache[cid] = (search(slot, floor, window, False, per_group), per_group)
        found, group_values[id(slot)] = best_cache[cid]
        if found is None:
            # Nothing free fits; preemption may still find it room.
            slot.density = slot.terms.scale / max(1, slot.chute.gpu_count)
            no_room.append(slot)
            continue
        slot.best_server, slot.best_value = found
        slot.density = found[1] / max(1, slot.chute.gpu_count)
        slots.append(slot)
    bonus = policy.size_priority
    if bonus > 0:
        # Whole boxes free up rarely once a fleet is full, and one big instance is one deploy
        # that can fail where eight small ones are eight: slots are taken by density raised
        # by `size_priority` per doubling of GPUs, so 1-GPU chutes fill the gaps around big
        # ones unless they pay clearly more.
        slots.sort(key=lambda s: (s.tier, -s.density * (1.0 + bonus * _log2(s.chute.gpu_count))))
    else:
        slots.sort(key=lambda s: (s.tier, -s.density))

    best_placed: list[Assign] = []
    best_unplaced: list[Slot] = list(slots)
    best_total = -math.inf
    best_prices: dict[int, tuple[float, int]] = {}
    prices: dict[int, tuple[float, int]] = {}
    for _ in range(max(1, policy.opportunity_passes)):
        state.reset()
        _apply_prices(ctx, prices)
        placed, unplaced = _greedy(slots, floor, window)
        total = sum(a.value for a in placed)
        if total > best_total + _EPS:
            best_total, best_placed, best_unplaced = total, placed, unplaced
            best_prices = prices
        new_prices = _prices(ctx, placed, unplaced, group_values)
        if not new_prices:
            break
        if new_prices == prices:
            break
        prices = new_prices

    # Replay the best pass so server state matches it, then repair.
    state.reset()
    _apply_prices(ctx, best_prices)
    for a in best_placed:
        a.gpu_ids = _State.take(a.srv, a.slot.chute.gpu_count)
    placed, unplaced = best_placed, best_unplaced
    if policy.repair:
        placed = _improve(placed, floor, budget=200)
    if policy.repair and unplaced:
        placed, unplaced = _repair(placed, unplaced, floor, window, budget=500)
    # Capacities in the flow are GPUs; a pull limit would make them two resources.
    if policy.repair and policy.exact_pairs_limit > 0 and policy.max_pending_per_server is None:
        placed, unplaced = _exact_polish(ctx, placed, unplaced, floor)
    unplaced = sorted(unplaced + no_room, key=lambda s: (s.tier, -s.density))
    return placed, unplaced


@dataclass(slots=True)
class _Diagnoses:
    """What is the same for chutes with the same needs, kept for the rest of the round."""

    by_need: dict[tuple[frozenset[str], bool, str], Rejection] = field(default_factory=dict)
    fitting: dict[tuple[tuple[int, ...], int], list[Srv]] = field(default_factory=dict)


def _diagnose(ctx: Context, slot: Slot, cache: _Diagnoses) -> Rejection:
    """Why a chute that passed the chute rules had no server at all."""
    chute = slot.chute
    if not slot.groups:
        need = (chute.supported_gpus, chute.tee, chute.validator)
        known = cache.by_need.get(need)
        if known is None:
            known = cache.by_need[need] = _no_compatible_server(ctx, chute)
        return known
    key = (tuple(id(grp) for grp in slot.groups), chute.gpu_count)
    fitting = cache.fitting.get(key)
    if fitting is None:
        fitting = cache.fitting[key] = [
            s
            for grp in slot.groups
            for s in grp.servers
            if s.free >= chute.gpu_count and s.pulls_left > 0
        ]
    if not fitting:
        return Rejection(
            Reason.NOT_ENOUGH_GPUS,
            f"no compatible server has {chute.gpu_count} free verified GPUs",
        )
    for srv in fitting:
        rej = pair_rejection(chute, srv.view, srv.free, ctx.backoff)
        if rej is None:
            v = slot_value(slot, srv)
            return Rejection(
                Reason.UNPROFITABLE,
                f"best value {v:.3f} <= floor {ctx.policy.min_value:.3f}",
            )
    last = pair_rejection(chute, fitting[0].view, fitting[0].free, ctx.backoff)
    assert last is not None
    return last


def _no_compatible_server(ctx: Context, chute: ChuteView) -> Rejection:
    if not ctx.servers:
        return Rejection(Reason.NO_SERVER, "no server passes the server rules")
    first = compatibility_rejection(chute, ctx.servers[0].view)
    reasons = {compatibility_rejection(chute, s.view) for s in ctx.servers}
    reasons.discard(None)
    if len(reasons) == 1 and first is not None:
        return first
    types = ", ".join(sorted(chute.supported_gpus))
    return Rejection(Reason.NO_SERVER, f"no {'TEE ' if chute.tee else ''}server with {types}")


def _decisions(
    ctx: Context,
    placements: list[Placement],
    unplaced: list[Slot],
) -> dict[str, ChuteDecision]:
    placed_count: dict[str, int] = {}
    for p in placements:
        if p.job_id is None:
            placed_count[p.chute_id] = placed_count.get(p.chute_id, 0) + 1
    first_slot: dict[str, Slot] = {}
    for candidate in ctx.slots:
        if candidate.job_id is None:
            first_slot.setdefault(candidate.chute.chute_id, candidate)
    unplaced_ids = {s.chute.chute_id for s in unplaced if s.job_id is None}
    min_density: dict[GroupKey, float] = {}
    for p in placements:
        srv = ctx.snapshot.server_by_id[p.server_id]
        key = (srv.gpu_type, srv.is_tee, srv.validator)
        d = p.value / max(1, len(p.gpu_ids))
        min_density[key] = min(d, min_density.get(key, math.inf))
    out: dict[str, ChuteDecision] = {}
    diagnoses = _Diagnoses()
    for chute in ctx.snapshot.chutes:
        cid = chute.chute_id
        wanted = ctx.wanted.get(cid, 0)
        placed = placed_count.get(cid, 0)
        rej = ctx.chute_rejections.get(cid)
        slot = first_slot.get(cid)
        best_id = None
        best_v = None
        needed = None
        if slot is not None and slot.best_server is not None:
            best_id = slot.best_server.view.server_id
            best_v = slot.best_value
            competitors = [min_density[grp.key] for grp in slot.groups if grp.key in min_density]
            if competitors:
                # To be placed it had to beat the cheapest placement that took its GPUs.
                needed = max(ctx.policy.min_value, min(competitors) * chute.gpu_count)
        if rej is None and slot is None and wanted > 0:
            rej = Rejection(Reason.NOT_ENOUGH_GPUS, "the fleet has no free GPUs")
        if rej is None and slot is not None and slot.best_server is None:
            rej = _diagnose(ctx, slot, diagnoses)
        elif rej is None and (cid in unplaced_ids or placed < min(wanted, 1)):
            need_txt = f" (needed more than {needed:.3f})" if needed else ""
            rej = Rejection(
                Reason.OUTBID,
                f"{placed} of {wanted} placed; the GPUs went to better-paying chutes{need_txt}",
            )
        out[cid] = ChuteDecision(cid, wanted, placed, rej, best_id, best_v, needed)
    return out


def _reason(a: Assign, ctx: Context) -> str:
    t = a.slot.terms
    view = a.srv.view
    if a.slot.job_id is not None:
        head = f"job {a.slot.job_id}"
    elif a.slot.tier == 1:
        head = "whitelisted"
    else:
        head = "best value"
    model = ctx.policy.value_model
    return (
        f"{head}: {model} value {a.value:.3f} on {view.name} ({view.gpu_type}, "
        f"${view.hourly_cost:.2f}/GPU-h), m={t.expected_multiplier:.3f}, p={t.p_survive:.2f}"
    )


def plan_round(snapshot: Snapshot, policy: PlanPolicy, now: datetime, rng: random.Random) -> Plan:
    """Plan one round: new placements on free GPUs, then preemptions for what did not fit."""
    from gepetto_core.scheduling.preemption import plan_preemptions

    ctx = build_context(snapshot, policy, now, rng)
    assigns, unplaced = _solve(ctx)
    assigns.sort(key=lambda a: (a.slot.tier, -a.value))
    limit = policy.max_deploys_per_round
    deferred: list[Slot] = []
    if limit is not None and len(assigns) > limit:
        for a in assigns[limit:]:
            deferred.append(a.slot)
            _State.give_back(a.srv, a.gpu_ids)
        assigns = assigns[:limit]
    placements = [
        Placement(
            chute_id=a.slot.chute.chute_id,
            server_id=a.srv.view.server_id,
            gpu_ids=tuple(a.gpu_ids),
            value=a.value,
            reason=_reason(a, ctx),
            job_id=a.slot.job_id,
        )
        for a in assigns
    ]
    preemptions = plan_preemptions(ctx, unplaced, placements) if policy.preemption.enabled else []
    decisions = _decisions(ctx, placements, unplaced + deferred)
    if deferred:
        decisions = _mark_round_limit(decisions, deferred)
    return Plan(
        placements=tuple(placements),
        preemptions=tuple(preemptions),
        decisions=decisions,
        server_rejections=dict(ctx.server_rejections),
        gpu_prices={s.view.server_id: s.price for s in ctx.servers if s.price > 0},
        value_model=policy.value_model,
    )


def _mark_round_limit(
    decisions: dict[str, ChuteDecision], deferred: list[Slot]
) -> dict[str, ChuteDecision]:
    out = dict(decisions)
    for slot in deferred:
        d = out.get(slot.chute.chute_id)
        if d is not None and d.rejection is not None and d.rejection.reason is Reason.OUTBID:
            out[d.chute_id] = ChuteDecision(
                d.chute_id,
                d.wanted,
                d.placed,
                Rejection(Reason.ROUND_LIMIT, "deferred: this round's deploy limit was reached"),
                d.best_server_id,
                d.best_value,
                d.needed_value,
            )
    return out
