"""The world's assumptions as data: each field is a dimension of the sweep (`bench.sweep`), the
defaults are the world of every earlier figure, and `CELLS` is the grid the sweep reports.

Plain Python (no numpy): the sweep's bookkeeping is unit-tested without the scientific stack.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

RECOMPUTE_EVERY = 30  # minutes between the validator's recomputations of targets (dynamic world)


@dataclass(frozen=True, slots=True)
class Assumptions:
    """The world's assumptions, each a dimension of the sweep (`bench.sweep`, issue #25).

    The defaults are the world every earlier figure was measured in (the 48 h benchmark of
    `bench.bench_planner`): a run with `Assumptions()` is bit for bit the old simulation.
    """

    # Share of chutes that are scalable (spare allowance) when the fleet is generated.
    p_scalable: float = 1.0
    # The validator's random downscale of established instances, per hour of their life.
    downscale_per_hour: float = 1.0 / 24
    # Every hidden failure probability (chute, server, pair) times this, capped at 0.95.
    failure_scale: float = 1.0
    # Every start-up range (minutes) times this.
    startup_scale: float = 1.0
    # The pod claims its launch config this far into its start-up (0.25: a quarter).
    claim_fraction: float = 0.25
    # "every_2h": every new instance of a bounty chute earns the bounty for its first 2 h.
    # "once_decaying": only the first of our instances to activate claims it, the boost
    # decays linearly to nothing over 2 h, and new bounties are posted now and then.
    bounty: str = "every_2h"
    # Targets and other miners' counts recomputed every RECOMPUTE_EVERY minutes, following a
    # per-chute traffic level (a log-AR(1) walk) that moves both together.
    dynamic: bool = False
    # Share of the fleet's GPUs already running established instances at minute 0.
    prefill: float = 0.0
    # Target of a chute no other miner runs, at least this. The validator's autoscaler gives a
    # public chute with no active instance max(5, ...) (its UNDERUTILIZED_CAP); the generated
    # catalog gives it its allowance only (0 when not scalable). 0: the catalog as generated.
    cold_target: int = 0

    def label(self) -> str:
        default = Assumptions()
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ",".join(parts) or "default"


@dataclass(frozen=True, slots=True)
class Cell:
    name: str
    dimension: str
    assumptions: Assumptions


# One dimension changed at a time from the default world (a full factorial does not fit): the
# default cell first, then contention (share of scalable chutes 0.35 / 0.7; 1.0 is the default),
# the validator's downscale, failures, start-up times, claim timing, bounties claimed once and
# decaying, targets and other miners that follow traffic every 30 min, a steady-state start,
# chutes nobody runs with the validator's floor on their target, and the combined cell with and
# without that floor.
CELLS: list[Cell] = [
    Cell("default", "none", Assumptions()),
    Cell("scalable_0.35", "contention", Assumptions(p_scalable=0.35)),
    Cell("scalable_0.7", "contention", Assumptions(p_scalable=0.7)),
    Cell("downscale_x2", "downscale rate", Assumptions(downscale_per_hour=2.0 / 24)),
    Cell("failures_x2", "failure rates", Assumptions(failure_scale=2.0)),
    Cell("failures_x0.5", "failure rates", Assumptions(failure_scale=0.5)),
    Cell("startup_x1.5", "start-up ranges", Assumptions(startup_scale=1.5)),
    Cell("claim_late", "claim timing", Assumptions(claim_fraction=0.75)),
    Cell("bounty_once", "bounties", Assumptions(bounty="once_decaying")),
    Cell("dynamic", "changing targets", Assumptions(dynamic=True)),
    Cell("prefilled", "start", Assumptions(prefill=0.8)),
    Cell("cold_chutes", "chutes nobody runs", Assumptions(cold_target=5)),
    Cell(
        "scalable_0.35_cold",
        "contention, chutes nobody runs",
        Assumptions(p_scalable=0.35, cold_target=5),
    ),
    Cell(
        "hard",
        "combined",
        Assumptions(p_scalable=0.35, bounty="once_decaying", dynamic=True, prefill=0.8),
    ),
    Cell(
        "hard_cold",
        "combined, chutes nobody runs",
        Assumptions(
            p_scalable=0.35, bounty="once_decaying", dynamic=True, prefill=0.8, cold_target=5
        ),
    ),
]
QUICK_CELLS: list[Cell] = [CELLS[0], CELLS[1], CELLS[9]]
