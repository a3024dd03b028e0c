"""Local search over a round's placements: a placement not on its best server moves there, the
occupants it displaces taking its place; a multi-GPU placement may trade its box for one where
it is worth a little less when the occupants it displaces gain more."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import itemgetter

from gepetto_core.scheduling.assignment import EPS, Assign, Book, slot_value, values_on
from gepetto_core.scheduling.round_state import Group, Srv, Tier


@dataclass(slots=True)
class _Rankings:
    """Servers ranked by a slot's value, computed once per round: shared by chute class
    (`orders`: groups and blocked servers) or per chute (`values`: only the best
    `limit` + 1, so every call in a round must pass the same `limit`)."""

    orders: dict[tuple[tuple[Group, ...], frozenset[str]], list[Srv]]
    values: dict[str, list[tuple[float, Srv]]]


def _targets(a: Assign, limit: int, cache: _Rankings) -> list[tuple[float, Srv]]:
    """Servers where `a` would be worth more than where it is, best first (ties in server
    order). A chute's values do not change during a round, so its servers are ranked once;
    when the value only rises with reliability (sunk cost, no pair evidence), that ranking is the
    same for every chute with the same groups and is shared."""
    slot = a.slot
    t = slot.terms
    floor = a.value + EPS
    out: list[tuple[float, Srv]] = []
    if not slot.pair_factor and t.cost_weight == 0:
        key = (tuple(slot.groups), slot.blocked)
        order = cache.orders.get(key)
        if order is None:
            order = [srv for grp in slot.groups for srv in grp.servers]
            if slot.blocked:
                order = [srv for srv in order if srv.view.server_id not in slot.blocked]
            order.sort(key=lambda srv: -srv.q)
            cache.orders[key] = order
        scale, off = t.scale, t.offset
        for srv in order:
            v = scale * srv.q - off
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
        # The top `limit` + 1 are all a search can use (one may be where `a` already is);
        # nlargest keeps sorted()'s order, ties in server order.
        ranked = heapq.nlargest(
            limit + 1, zip(values_on(slot, servers), servers, strict=True), key=itemgetter(0)
        )
        cache.values[slot.chute.chute_id] = ranked
    for v, srv in ranked:
        if v <= floor or len(out) >= limit:
            break
        if srv is not a.srv:
            out.append((v, srv))
    return out


def _move(book: Book, a: Assign, target: Srv, v_target: float, floor: float) -> float | None:
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
        for b in book.on.get(target, ()):
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
    if gain <= EPS or target.pulls_left + len(victims) <= 0:
        return None
    book.drop(a)
    for b, _ in victims:
        book.drop(b)
    book.add(a.slot, target, v_target)
    for b, vb in victims:
        book.add(b.slot, home, vb)
    return gain


def improve(placed: list[Assign], floor: float, budget: int, rounds: int = 2) -> list[Assign]:
    """Local search: move placed slots to servers where they are worth more, swapping the
    displaced occupants back to the server they leave, then let multi-GPU placements trade
    boxes (`_swap_boxes`), while that raises the total."""
    book = Book(placed)
    cache = _Rankings({}, {})
    for round_no in range(rounds):
        moved = 0
        regret = [
            a
            for a in book.placed
            if a.slot.best_value is not None and a.value < a.slot.best_value - EPS
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


def _swap_boxes(book: Book, floor: float, tries: int = 3) -> int:
    """Move a multi-GPU placement to a server where it is worth a little less, when the
    occupants it displaces there are worth more on the server it leaves (an unreliable box is
    better spent on one big deploy than on many small ones: fewer deploys to fail). The
    regret moves of `improve` never try this: the big placement already sits on its best
    server. Returns how many moved."""
    moved = 0
    big = [a for a in book.placed if a.slot.chute.gpu_count > 1 and a.slot.tier == Tier.ORDINARY]
    # Servers holding placements of ours, per (groups, blocked servers) of a chute.
    holding: dict[tuple[tuple[Group, ...], frozenset[str]], list[Srv]] = {}
    for a in big:
        if not book.holds(a):
            continue  # moved already as somebody's victim
        key = (tuple(a.slot.groups), a.slot.blocked)
        occupied = holding.get(key)
        if occupied is None:
            blocked = a.slot.blocked
            occupied = holding[key] = [
                srv
                for grp in a.slot.groups
                for srv in grp.servers
                if book.on.get(srv) and not (blocked and srv.view.server_id in blocked)
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
