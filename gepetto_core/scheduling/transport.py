"""Exact re-assignment of single-GPU instances: a max-profit transportation problem.

With the multi-GPU placements fixed, placing 1-GPU slots is a bipartite flow: each chute sends up
to its slot count, each server accepts up to its remaining GPUs, an arc (chute, server) earns the
pair value. Successive shortest paths (Dijkstra with potentials) add the most profitable unit
path until none earns more than nothing, which is optimal for this sub-problem; the greedy's
misplacements among 1-GPU chutes (a chain of moves no single swap finds) disappear.

Pure and small: nodes and arcs in flat lists. Used by the planner on small rounds only (the
cost grows with pairs x placements).

Costs are integers (values scaled so the largest is 2**40): with floats, rounding made
zero-cost cycles of tied values (the fork model's large, equal scores) slightly negative, and
Dijkstra then relaxed around such a cycle for ever (the planner hung).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

_INF = float("inf")
# Integer cost of the most valuable arc: resolution 1e-12 of it, far below any decision.
_SCALE = 2**40


@dataclass(frozen=True, slots=True)
class Arc:
    """A chute may send units to a server, each worth `value`."""

    chute: int
    server: int
    value: float


def max_profit_transport(
    supply: Sequence[int], capacity: Sequence[int], arcs: Sequence[Arc]
) -> dict[tuple[int, int], int]:
    """Units per (chute, server) maximising the total value; arcs worth <= 0 are never used.

    `supply[c]`: slots of chute c; `capacity[s]`: GPUs server s can still take."""
    n_c, n_s = len(supply), len(capacity)
    src, sink = n_c + n_s, n_c + n_s + 1
    n = n_c + n_s + 2
    head: list[list[int]] = [[] for _ in range(n)]
    to: list[int] = []
    cap: list[int] = []
    cost: list[int] = []

    def add(u: int, v: int, c: int, w: int) -> int:
        e = len(to)
        to.extend((v, u))
        cap.extend((c, 0))
        cost.extend((w, -w))
        head[u].append(e)
        head[v].append(e + 1)
        return e

    for c, k in enumerate(supply):
        if k > 0:
            add(src, c, k, 0)
    usable = [a for a in arcs if a.value > 0 and supply[a.chute] > 0 and capacity[a.server] > 0]
    top = max((a.value for a in usable), default=1.0)
    pair_arc: dict[int, tuple[int, int]] = {}
    pot = [0] * n
    for a in usable:
        s_node = n_c + a.server
        w = -round(a.value / top * _SCALE)
        e = add(a.chute, s_node, supply[a.chute], w)
        pair_arc[e] = (a.chute, a.server)
        # Shortest distance from the source in the initial DAG: the potentials.
        if w < pot[s_node]:
            pot[s_node] = w
    for s, k in enumerate(capacity):
        if k > 0:
            add(n_c + s, sink, k, 0)
    pot[sink] = min(pot[n_c : n_c + n_s], default=0)

    while True:
        dist: list[float] = [_INF] * n  # ints once reached
        prev = [-1] * n
        dist[src] = 0
        heap: list[tuple[float, int]] = [(0, src)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if u == sink:
                break
            pu = pot[u]
            for e in head[u]:
                if cap[e] <= 0:
                    continue
                v = to[e]
                nd = d + cost[e] + pu - pot[v]
                if nd < dist[v]:
                    dist[v] = nd
                    prev[v] = e
                    heapq.heappush(heap, (nd, v))
        d_sink = dist[sink]
        if d_sink == _INF:
            break
        step = int(d_sink)
        for v in range(n):
            dv = dist[v]
            pot[v] += int(dv) if dv < step else step
        # pot[sink] - pot[src] is the real cost of the path: stop once it earns nothing.
        if pot[sink] - pot[src] >= 0:
            break
        path = []
        v = sink
        while v != src:
            e = prev[v]
            path.append(e)
            v = to[e ^ 1]
        push = min(cap[e] for e in path)
        for e in path:
            cap[e] -= push
            cap[e ^ 1] += push

    flows: dict[tuple[int, int], int] = {}
    for e, key in pair_arc.items():
        f = cap[e ^ 1]
        if f > 0:
            flows[key] = f
    return flows
