"""An upper bound on what any policy can earn in a simulated window: where a target asks more of
gepetto than this, no policy could meet it (issue #25: the fork target in a prefilled start).

`held_at_once` is an LP over GPU kinds (GPU type x TEE): how much multiplier a fleet can hold at
one moment when each chute may have at most `caps[chute]` of our instances; fractional
instances and no packing into servers, so it is never below what a real placement holds.

`window_bound` turns that into multiplier-hours over the window of one sweep cell
(`bench.simulate`'s world), relaxing everything that only lowers earnings:

- **Caps.** The validator's launch gate (`check_public_capacity`) lets our claimed instances
  reach `target - others` while other miners run the chute, and `target + 3` while nothing is
  active (the first rule accepts a claim up to `total <= target + 2`). Every earning instance
  was claimed, so it fits the cap of its claim; with targets that move (dynamic world) the
  bound takes each chute's largest cap over the window.
- **Pay.** An instance earns at most its launch multiplier per minute it holds its GPUs: the
  start-up credit is 0.3 of it, and under `every_2h` the bounty part is paid for 2 h only. The
  bound pays every instance the chute's multiplier, bounty included, from minute 0: no start-up,
  no failure, no downscale, no preemption cost.
- **Bounties claimed once** (`once_decaying`): one instance per posted bounty earns its decaying
  boost, at most (m - plain) for one hour; the LP pays the plain multiplier, and every posting
  adds that hour. Later postings come from the validator's recomputations, whose draws skip the
  chutes that still carry a bounty; the bound counts the postings of a window in which no bounty
  is claimed, so it can miss the few that a claim makes possible (about one posting per 30 min
  is drawn, each worth at most half a plain hour of one chute: well under 1 % of the bound).

Needs the bench extra (numpy, scipy), like `bench.diagnose`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.optimize import linprog

from bench.assumptions import RECOMPUTE_EVERY, Assumptions
from bench.fleets import World
from bench.simulate import Sim
from gepetto_core.scheduling.snapshot import ChuteView, ServerView

# The launch gate's first rule: with nothing active, a claim passes up to total <= target + 2.
UNROUTED_EXTRA = 3


def held_at_once(
    servers: Iterable[ServerView],
    chutes: Iterable[ChuteView],
    caps: Mapping[str, int],
    values: Mapping[str, float],
) -> float:
    """The most multiplier the fleet can hold at once (LP, see the module doc)."""
    gpus: Counter[tuple[str, bool]] = Counter()
    for s in servers:
        gpus[(s.gpu_type, s.is_tee)] += len(s.gpus)
    kinds = list(gpus)
    allowed = [c for c in chutes if caps.get(c.chute_id, 0) > 0]
    pairs = [
        (ci, ki)
        for ci, c in enumerate(allowed)
        for ki, (gpu_type, tee) in enumerate(kinds)
        if gpu_type in c.supported_gpus and tee == c.tee
    ]
    if not pairs:
        return 0.0
    a = np.zeros((len(allowed) + len(kinds), len(pairs)))
    for j, (ci, ki) in enumerate(pairs):
        a[ci, j] = 1.0
        a[len(allowed) + ki, j] = allowed[ci].gpu_count
    b = np.array([caps[c.chute_id] for c in allowed] + [gpus[k] for k in kinds], dtype=float)
    gain = np.array([-values[allowed[ci].chute_id] for ci, _ in pairs])
    res = linprog(gain, A_ub=a, b_ub=b, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"the bound's LP did not solve: {res.message}")
    return float(-res.fun)


def gate_cap(target: int, others: int) -> int:
    """The most claimed instances of ours the launch gate lets a chute have (module doc)."""
    return max(0, target - others) if others > 0 else target + UNROUTED_EXTRA


def window_bound(world: World, seed: int, assumptions: Assumptions, hours: int) -> dict[str, float]:
    """Upper bound on the multiplier-hours any policy earns in `hours` of this cell's world:
    {"multiplier_hours": the bound, "bounty_part": its share from bounties claimed once}."""
    sim = Sim(world, seed, assumptions=assumptions)  # applies the cell, prefill included
    once = assumptions.bounty == "once_decaying"
    caps: dict[str, int] = {}
    best: dict[str, float] = {}

    def look() -> None:
        for c in sim.world.chutes:
            cid = c.chute_id
            cap = gate_cap(sim.world.targets[cid], sim.world.others[cid])
            caps[cid] = max(caps.get(cid, 0), cap)
            pay = sim.plain[cid] if once else c.effective_compute_multiplier
            best[cid] = max(best.get(cid, 0.0), pay)

    look()
    bounty = 0.0
    if once:
        bounty = sum(
            c.effective_compute_multiplier - sim.plain[c.chute_id] for c in sim.chutes.values()
        )
    posted = len(sim.bounty_events)
    if assumptions.dynamic or once:
        for minute in range(RECOMPUTE_EVERY, hours * 60, RECOMPUTE_EVERY):
            sim.now = minute
            sim.recompute()
            look()
    if once:
        bounty += sum(
            sim.chutes[cid].effective_compute_multiplier - sim.plain[cid]
            for _, cid in sim.bounty_events[posted:]
        )
    held = held_at_once(sim.world.servers, sim.world.chutes, caps, best)
    return {"multiplier_hours": held * hours + bounty, "bounty_part": bounty}
