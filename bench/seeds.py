"""Which seeds may be looked at while tuning, and which are kept for reporting (issue #25).

Planner settings, policy comments and the simulation wrapper were tuned on the benchmark's own
fleets (fleet seeds 1-3, the holdout fleet 4 of `bench.diagnose`, quality seeds 0-9). Those
seeds, and every seed below `TUNING_LIMIT`, are the tuning set: use them to look for what
to change. The evaluation set starts at `EVALUATION_BASE` and is only ever reported: a change
that is tried on an evaluation seed turns that seed into a tuning seed, and the range moves on
(raise `EVALUATION_BASE`, never reuse a seed that was looked at).
"""

from __future__ import annotations

TUNING_LIMIT = 1_000
# Fleet seeds the 48 h simulation and `bench.diagnose` were tuned on (per profile).
TUNING_FLEET_SEEDS: tuple[int, ...] = (1, 2, 3, 4)
# Planner-quality seeds of `bench.bench_planner` (500 chutes x 100 servers).
TUNING_QUALITY_SEEDS: tuple[int, ...] = tuple(range(10))

EVALUATION_BASE = 10_000
# Fleets (per profile) the sweep reports on; the first `n` are used by a run with `n` seeds.
EVALUATION_FLEET_SEEDS: tuple[int, ...] = tuple(range(EVALUATION_BASE + 1, EVALUATION_BASE + 41))
# Planner-quality seeds the sweep reports on: disjoint from the fleets' seeds as well, so no
# evaluation fleet is also a quality snapshot.
EVALUATION_QUALITY_SEEDS: tuple[int, ...] = tuple(
    range(EVALUATION_BASE + 5_001, EVALUATION_BASE + 5_061)
)


def is_tuning(seed: int) -> bool:
    return seed < TUNING_LIMIT or seed in TUNING_FLEET_SEEDS or seed in TUNING_QUALITY_SEEDS


def evaluation_fleets(n: int) -> list[int]:
    if not 1 <= n <= len(EVALUATION_FLEET_SEEDS):
        raise ValueError(f"between 1 and {len(EVALUATION_FLEET_SEEDS)} evaluation fleets")
    return list(EVALUATION_FLEET_SEEDS[:n])


def evaluation_quality(n: int) -> list[int]:
    if not 1 <= n <= len(EVALUATION_QUALITY_SEEDS):
        raise ValueError(f"between 1 and {len(EVALUATION_QUALITY_SEEDS)} quality seeds")
    return list(EVALUATION_QUALITY_SEEDS[:n])
