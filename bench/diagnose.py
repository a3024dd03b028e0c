"""Where gepetto's lead over the official policy comes from in the 48 h simulation.

    python -m bench.diagnose steady legacy 2         # one fleet, both policies, policy seed 0
    python -m bench.diagnose holdout legacy4 tee4    # fleets outside the benchmark's seeds

`steady` splits the run into the fill (first 6 h) and the steady state after it. It reports the
plain multiplier (bounty removed) each policy holds against an upper bound on what any policy
could hold, the bounty part of the earnings, and the GPU-hours left idle, with the planner's
reason where gepetto left them idle. The bound is an LP over GPU types: our share of every
chute's target (target - other miners), the fleet's GPUs of each type, no packing into servers.
`holdout` repeats the benchmark's comparison (fork once, 3 policy seeds for the others, the
same ratios) on other fleet seeds, to check that a fleet's result is not a property of the
benchmark's particular seeds.

Not a test and writes nothing: it prints what it measures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # `python bench/diagnose.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_planner import _policy, _ratios, _simulate_one
from bench.bound import held_at_once
from bench.fleets import Profile, World, make_world
from bench.simulate import HOURS, Fork, Gepetto, Inst, Official, Sim, simulate

FILL_HOURS = 6


def held_bound(world: World) -> float:
    """LP upper bound on the plain multiplier our fleet can hold at once (see module doc)."""
    chutes = [c for c in world.chutes if c.has_cords and not c.ban_reason]
    share = {
        c.chute_id: max(0, world.targets[c.chute_id] - world.others[c.chute_id]) for c in chutes
    }
    plain = {c.chute_id: _plain(c.effective_compute_multiplier, c.bounty_boost) for c in chutes}
    return held_at_once(world.servers, chutes, share, plain)


def _plain(m: float, bounty: float) -> float:
    return m / bounty if bounty > 0 else m


@dataclass
class Watch:
    """What a policy holds, minute by minute."""

    policy: Official | Gepetto
    hourly_plain: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    idle_gpu_hours: dict[str, float] = field(default_factory=dict)
    sim: Sim | None = None

    def __call__(self, sim: Sim) -> None:
        self.sim = sim
        self.hourly_plain[sim.now // 60] += sum(_plain(i.m, i.bounty) for i in sim.live) / 60
        if sim.now < FILL_HOURS * 60:
            return
        plan = self.policy.last_plan if isinstance(self.policy, Gepetto) else None
        for sid, free in sim.free.items():
            if free:
                rejection = plan.server_rejections.get(sid) if plan is not None else None
                why = rejection.reason.value if rejection is not None else "no candidate placed"
                self.idle_gpu_hours[why] = self.idle_gpu_hours.get(why, 0.0) + len(free) / 60


def bounty_part(sim: Sim, inst: Inst) -> float:
    """The bounty share of an instance's earnings (the simulator pays m for its first 2 h
    active, the plain multiplier after)."""
    life = sim.earning_minutes(inst)
    if life is None:
        return 0.0
    return (inst.m - _plain(inst.m, inst.bounty)) * min(life, 120) / 60


def steady(profile: Profile, seed: int) -> None:
    world = make_world(profile, 500, 100, seed, p_scalable=1.0)
    bound = held_bound(world)
    print(f"{profile} {seed}: bound on the plain multiplier held at once: {bound:.2f}")
    for name in ("official", "gepetto"):
        policy = _policy(name, 0)
        assert not isinstance(policy, Fork)
        watch = Watch(policy)
        result = simulate(world, seed, policy, observe=watch)
        assert watch.sim is not None
        sim = watch.sim
        bounty = sum(bounty_part(sim, i) for i in sim.ended + sim.live)
        later = watch.hourly_plain[FILL_HOURS:]
        held = " ".join(f"h{h} {watch.hourly_plain[h] / bound:.4f}" for h in (12, 24, 36, 47))
        idle = ", ".join(
            f"{why} {h:.1f}" for why, h in sorted(watch.idle_gpu_hours.items(), key=lambda x: -x[1])
        )
        print(
            f"  {name:8} mult-h {result.multiplier_hours:8.1f} (bounty part {bounty:6.1f}); "
            f"plain multiplier-hours in the first {FILL_HOURS} h "
            f"{sum(watch.hourly_plain[:FILL_HOURS]):7.1f}, after {sum(later):8.1f}\n"
            f"           held / bound: mean after the fill {statistics.mean(later) / bound:.4f}; "
            f"{held}\n"
            f"           idle GPU-hours after the fill: {idle or 'none'}"
        )


def parse_fleet(name: str) -> tuple[Profile, int]:
    """Parse a fleet name: legacy4 is the legacy profile with seed 4."""
    match = re.fullmatch(r"(tee|legacy)(\d+)", name)
    if match is None:
        raise argparse.ArgumentTypeError(f"{name!r}: expected tee<seed> or legacy<seed>")
    return cast(Profile, match[1]), int(match[2])


def holdout(fleets: list[tuple[Profile, int]]) -> None:
    """The benchmark's comparison (fork once, the others with 3 policy seeds) on these fleets."""
    jobs = [
        (profile, seed, policy, HOURS, k)
        for profile, seed in fleets
        for policy in ("fork", "official", "gepetto")
        for k in range(1 if policy == "fork" else 3)
    ]
    with ProcessPoolExecutor() as pool:
        done = list(pool.map(_simulate_one, *zip(*jobs, strict=True)))
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for (profile, seed, policy, _, _), r in zip(jobs, done, strict=True):
        runs.setdefault((profile, seed, policy), []).append(r.__dict__)
    for profile, seed in fleets:
        by = {policy: runs[(profile, seed, policy)] for policy in ("fork", "official", "gepetto")}
        ratios = _ratios(by["gepetto"], by["official"], by["fork"])
        mult_h = [round(r["multiplier_hours"]) for r in by["official"] + by["gepetto"]]
        print(
            f"{profile}{seed}: mult-h official {mult_h[:3]} gepetto {mult_h[3:]}; "
            f"{ratios['vs_fork_mult_h']:.2f}x fork, {ratios['vs_official_mult_h']:.4f}x official, "
            f"failed deploys {ratios['vs_official_failed']:.2f}x official"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("steady", help="fill vs steady state on one fleet")
    s.add_argument("profile", choices=("tee", "legacy"))
    s.add_argument("seed", type=int)
    h = sub.add_parser("holdout", help="official vs gepetto on other fleet seeds")
    h.add_argument("fleets", nargs="+", type=parse_fleet, help="profile and seed, e.g. legacy4")
    args = parser.parse_args(argv)
    if args.what == "steady":
        steady(args.profile, args.seed)
    else:
        holdout(args.fleets)


if __name__ == "__main__":
    main()
