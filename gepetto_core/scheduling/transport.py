"""Exact re-assignment of single-GPU instances: a max-profit transportation problem.

With the multi-GPU placements fixed, placing 1-GPU slots is a bipartite flow: each chute sends up
to its slot count, each server accepts up to its remaining GPUs, an arc (chute, server) earns the
pair value. Successive shortest paths add the most profitable augmenting path until none earns
more than nothing, which is optimal for this sub-problem; the greedy's misplacements among 1-GPU
chutes (a chain of moves no single swap finds) disappear.

The search runs on servers only. An augmenting path starts with a chute that has slots left
entering some server, hops server to server through chutes already placed there (one of their
units moves on), and ends on a server with a free GPU. So each search is over about 100 servers
and the hops of the units placed so far, not over every chute node and arc (3x faster on the
bench's legacy rounds). Entries and hops have costs of either sign; potentials (the last
search's distances) keep every reduced cost non-negative, so each search is a Dijkstra that
stops at the first server with room. Used by the planner on small rounds only
(`PlanPolicy.exact_pairs_limit`).

Costs are integers (values scaled so the largest is 2**40): with floats, rounding made
zero-cost cycles of tied values (large, equal scores) slightly negative, and a
shortest-path search then relaxed around such a cycle for ever (the planner hung).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

# Larger than any path cost (at most 2**40 per hop, 100s of hops): keeps the arithmetic int.
_INF = 1 << 100
# Integer value of the most valuable arc: resolution 1e-12 of it, far below any decision.
_SCALE = 2**40


@dataclass(frozen=True, slots=True)
class Arc:
    """A chute may send units to a server, each worth `value`."""

    chute: int
    server: int
    value: float


@dataclass(slots=True)
class _Network:
    """The flow so far and what the next search needs."""

    # worth[c][s]: integer value of one unit of chute c on server s.
    worth: dict[int, dict[int, int]]
    # entries[s]: (value, chute) into server s, best first; chutes run out of slots for good
    # (a path never gives a chute's slot back), so a cursor skips them once.
    entries: list[list[tuple[int, int]]]
    cursor: list[int]
    left: list[int]  # slots each chute still has to place
    room: list[int]  # GPUs each server still has free
    # placed[s][c]: units of chute c on server s (the hops out of s, and the answer).
    placed: list[dict[int, int]]
    # Potentials (Johnson): the last search's distances keep every reduced cost >= 0, so each
    # search is a Dijkstra.
    pot: list[int]
    pot_end: int


class _Path(NamedTuple):
    """A search's result: distances, predecessors, and the cheapest server with room."""

    dist: list[int]
    # pred[s]: (previous server, chute moved) for a hop, (-1, chute) for an entry.
    pred: list[tuple[int, int]]
    d_end: int
    end: int  # -1: no server with room is reachable


def max_profit_transport(
    supply: Sequence[int], capacity: Sequence[int], arcs: Sequence[Arc]
) -> dict[tuple[int, int], int]:
    """Units per (chute, server) maximising the total value; arcs worth <= 0 are never used.

    `supply[c]`: slots of chute c; `capacity[s]`: GPUs server s can still take; at most one arc
    per (chute, server)."""
    net = _network(supply, capacity, arcs)
    if net is None:
        return {}
    while True:
        path = _shortest_path(net)
        if path.end < 0:
            break
        real = path.d_end + net.pot_end  # the path's own cost: a gain when negative
        _update_potentials(net, path)
        if real >= 0:
            break  # no path earns more than nothing
        _augment(net, path)
    return {(c, s): f for s, on in enumerate(net.placed) for c, f in on.items()}


def _network(
    supply: Sequence[int], capacity: Sequence[int], arcs: Sequence[Arc]
) -> _Network | None:
    """The empty flow over the profitable arcs (None: there are none)."""
    n_s = len(capacity)
    usable = [a for a in arcs if a.value > 0 and supply[a.chute] > 0]
    if not usable:
        return None
    top = max(a.value for a in usable)
    worth: dict[int, dict[int, int]] = {}
    entries: list[list[tuple[int, int]]] = [[] for _ in range(n_s)]
    for a in usable:
        w = round(a.value / top * _SCALE)
        worth.setdefault(a.chute, {})[a.server] = w
        entries[a.server].append((w, a.chute))
    for lst in entries:
        lst.sort(key=lambda e: (-e[0], e[1]))
    room = list(capacity)
    # Before any unit is placed, a server's distance is its best entry.
    pot = [-lst[0][0] if lst else 0 for lst in entries]
    pot_end = min((pot[s] for s in range(n_s) if room[s] > 0 and entries[s]), default=0)
    return _Network(
        worth=worth,
        entries=entries,
        cursor=[0] * n_s,
        left=list(supply),
        room=room,
        placed=[{} for _ in range(n_s)],
        pot=pot,
        pot_end=pot_end,
    )


def _shortest_path(net: _Network) -> _Path:
    """Dijkstra on reduced costs from every server's best remaining entry to the virtual end
    node, reached from any server with room at no cost."""
    n_s = len(net.room)
    entries, cursor, left, pot, room = net.entries, net.cursor, net.left, net.pot, net.room
    placed, worth, pot_end = net.placed, net.worth, net.pot_end
    dist = [_INF] * n_s
    pred: list[tuple[int, int]] = [(-1, -1)] * n_s
    heap: list[tuple[int, int]] = []
    for s in range(n_s):
        lst = entries[s]
        i = cursor[s]
        while i < len(lst) and left[lst[i][1]] == 0:
            i += 1
        cursor[s] = i
        if i < len(lst):
            d = -lst[i][0] - pot[s]
            dist[s] = d
            pred[s] = (-1, lst[i][1])
            heap.append((d, s))
    heapq.heapify(heap)
    d_end, end = _INF, -1
    while heap:
        d1, s1 = heapq.heappop(heap)
        if d1 >= d_end:
            break
        if d1 > dist[s1]:
            continue
        p1 = pot[s1]
        if room[s1] > 0:
            nd = d1 + p1 - pot_end
            if nd < d_end:
                d_end, end = nd, s1
        for c in placed[s1]:
            row = worth[c]
            base = d1 + p1 + row[s1]
            for s2, w2 in row.items():
                nd = base - w2 - pot[s2]
                if nd < dist[s2]:
                    dist[s2] = nd
                    pred[s2] = (s1, c)
                    heapq.heappush(heap, (nd, s2))
    return _Path(dist, pred, d_end, end)


def _update_potentials(net: _Network, path: _Path) -> None:
    pot, dist, d_end = net.pot, path.dist, path.d_end
    for s in range(len(pot)):
        ds = dist[s]
        pot[s] += ds if ds < d_end else d_end
    net.pot_end += d_end


def _augment(net: _Network, path: _Path) -> None:
    """Walk back to the entry; the push is the tightest of supply, room and moved units."""
    pred, end, placed = path.pred, path.end, net.placed
    hops: list[tuple[int, int, int]] = []  # (from server, chute, to server)
    s = end
    push = net.room[end]
    while True:
        prev, c = pred[s]
        if prev < 0:
            entry_chute, first = c, s
            push = min(push, net.left[c])
            break
        hops.append((prev, c, s))
        push = min(push, placed[prev][c])
        s = prev
    net.left[entry_chute] -= push
    _move(placed[first], entry_chute, push)
    for prev, c, nxt in hops:
        _move(placed[prev], c, -push)
        _move(placed[nxt], c, push)
    net.room[end] -= push


def _move(on: dict[int, int], c: int, units: int) -> None:
    f = on.get(c, 0) + units
    if f:
        on[c] = f
    else:
        del on[c]
