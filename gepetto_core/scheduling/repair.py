"""Repair: an unplaced slot takes a server by evicting lower-value new placements from it when
that is a net gain; the evicted ones then look for room elsewhere."""

from __future__ import annotations

import math

from gepetto_core.scheduling.assignment import EPS, Assign, Book, search, slot_value
from gepetto_core.scheduling.round_state import Group, GroupKey, Slot, Srv

# Eviction targets tried per unplaced slot (the cheapest evictions first); more found nothing
# better (docs/scheduling.md#defaults).
REPAIR_TRIALS = 1


def _try_evict(
    book: Book, u: Slot, srv: Srv, v: float, floor: float, window: float
) -> float | None:
    """Place `u` on `srv` by evicting its cheapest new placements, which then look for room
    elsewhere. Returns the net gain, leaving the change applied (None: not possible)."""
    g = u.chute.gpu_count
    need = g - srv.free
    lost = 0.0
    for a in sorted(book.on.get(srv, []), key=lambda a: a.value / a.slot.chute.gpu_count):
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


def _min_density(placed: list[Assign]) -> dict[GroupKey, float]:
    """Per group, the lowest value per GPU among the placements: a slot denser than that may
    find room there by eviction."""
    min_density: dict[GroupKey, float] = {}
    for a in placed:
        assert a.srv.group is not None
        d = a.value / a.slot.chute.gpu_count
        key = a.srv.group.key
        if d < min_density.get(key, math.inf):
            min_density[key] = d
    return min_density


def _best_eviction(
    book: Book, u: Slot, groups: list[Group], floor: float, window: float
) -> tuple[float, Srv, float] | None:
    """(gain, server, value) of the best eviction that places `u`, or None. Servers are ranked
    by what eviction would cost before anybody moves; the best few are tried and undone."""
    g = u.chute.gpu_count
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
    for _, srv, v in options[:REPAIR_TRIALS]:
        mark = len(book.log)
        gain = _try_evict(book, u, srv, v, floor, window)
        book.undo_to(mark)
        if gain is not None and gain > EPS and (best is None or gain > best[0]):
            best = (gain, srv, v)
    return best


def repair(
    placed: list[Assign], unplaced: list[Slot], floor: float, window: float, budget: int
) -> tuple[list[Assign], list[Slot]]:
    """Give unplaced slots room by evicting lower-value new placements (which may move)."""
    book = Book(placed)
    min_density = _min_density(placed)
    tried = 0
    hopeless: set[str] = set()  # chutes whose previous slot found no gainful eviction
    # (groups, gpu_count) -> best value of a slot without pair evidence that found none: a
    # later one like it is worth less everywhere (slots come by density), so it finds none too.
    hopeless_like: dict[tuple[tuple[Group, ...], int], float] = {}
    for u in unplaced:
        if tried >= budget:
            break
        if book.is_placed(u) or u.chute.chute_id in hopeless:
            continue
        plain = not u.pair_factor and not u.blocked
        sig = (tuple(u.groups), u.chute.gpu_count)
        if plain and (u.best_value or 0.0) <= hopeless_like.get(sig, -math.inf):
            continue
        g = u.chute.gpu_count
        need_density = (u.best_value or 0.0) / g
        groups = [grp for grp in u.groups if min_density.get(grp.key, math.inf) < need_density]
        if not groups:
            continue
        tried += 1
        best = _best_eviction(book, u, groups, floor, window)
        if best is not None:
            _try_evict(book, u, best[1], best[2], floor, window)
            book.log.clear()
        else:
            hopeless.add(u.chute.chute_id)
            if plain:
                hopeless_like[sig] = max(hopeless_like.get(sig, -math.inf), u.best_value or 0.0)
    still = [s for s in unplaced if not book.is_placed(s)]
    return book.placed, still
