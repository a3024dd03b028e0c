"""Exact re-assignment of single-GPU instances: a max-profit transportation problem.

With the multi-GPU placements fixed, placing 1-GPU slots is a bipartite flow: each chute sends up
to its slot count, each server accepts up to its remaining GPUs, an arc (chute, server) earns the
pair value. Successive shortest paths (Dijkstra with potentials) add the most profitable unit
path until none earns more than nothing, which is optimal for this sub-problem; the greedy's
misplacements among 1-GPU chutes (a chain of moves no single swap finds) disappear.

Pure and small: nodes and arcs in flat lists. Used by the planner on small rounds only (the
cost grows with pairs x placements).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-12
_INF = float("inf")


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
    cost: list[float] = []

    def add(u: int, v: int, c: int, w: float) -> int:
        e = len(to)
        to.extend((v, u))
        cap.extend((c, 0))
        cost.extend((w, -w))
        head[u].append(e)
        head[v].append(e + 1)
        return e

    for c, k in enumerate(supply):
        if k > 0:
            add(src, c, k, 0.0)
    pair_arc: dict[int, tuple[int, int]] = {}
    pot = [0.0] * n
    for a in arcs:
        if a.value <= 0 or supply[a.chute] <= 0 or capacity[a.server] <= 0:
            continue
        s_node = n_c + a.server
        e = add(a.chute, s_node, supply[a.chute], -a.value)
        pair_arc[e] = (a.chute, a.server)
        # Shortest distance from the source in the initial DAG: the potentials.
        if -a.value < pot[s_node]:
            pot[s_node] = -a.value
    for s, k in enumerate(capacity):
        if k > 0:
            add(n_c + s, sink, k, 0.0)
    pot[sink] = min(pot[n_c : n_c + n_s], default=0.0)

    while True:
        dist = [_INF] * n
        prev = [-1] * n
        dist[src] = 0.0
        heap = [(0.0, src)]
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
                if nd < dist[v] - _EPS:
                    dist[v] = nd
                    prev[v] = e
                    heapq.heappush(heap, (nd, v))
        d_sink = dist[sink]
        if d_sink == _INF:
            break
        for v in range(n):
            pot[v] += dist[v] if dist[v] < d_sink else d_sink
        # pot[sink] - pot[src] is the real cost of the path: stop once it earns nothing.
        if pot[sink] - pot[src] >= -1e-9:
            break
        push = _INF
        v = sink
        while v != src:
            e = prev[v]
            push = min(push, cap[e])
            v = to[e ^ 1]
        v = sink
        while v != src:
            e = prev[v]
            cap[e] -= int(push)
            cap[e ^ 1] += int(push)
            v = to[e ^ 1]

    flows: dict[tuple[int, int], int] = {}
    for e, key in pair_arc.items():
        f = cap[e ^ 1]
        if f > 0:
            flows[key] = f
    return flows
