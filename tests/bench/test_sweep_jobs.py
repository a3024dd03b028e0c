"""The sweep's schedule (`bench.sweep.jobs`): only evaluation seeds, breadth first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import seeds
from bench.assumptions import CELLS
from bench.sweep import jobs


def test_the_sweep_only_runs_evaluation_seeds() -> None:
    todo = list(jobs(CELLS, seeds.evaluation_fleets(3), seeds.evaluation_quality(30), 12, True))
    sims = [j for j in todo if j[0] == "sim"]
    quality = [j for j in todo if j[0] == "quality"]
    assert {j[3] for j in sims} == set(seeds.evaluation_fleets(3))
    assert not any(seeds.is_tuning(j[3]) for j in sims)
    assert sorted(j[2] for j in quality) == seeds.evaluation_quality(30)
    assert not any(seeds.is_tuning(j[2]) for j in quality)
    assert len(todo) == len(set(todo))  # nothing scheduled twice


def test_focus_gives_the_first_cells_every_fleet_and_the_rest_one() -> None:
    fleets = seeds.evaluation_fleets(3)
    todo = [j for j in jobs(CELLS, fleets, [], 12, False, focus=2) if j[0] == "sim"]
    per_cell = {c.name: {j[3] for j in todo if j[1] is c} for c in CELLS}
    assert per_cell[CELLS[0].name] == per_cell[CELLS[1].name] == set(fleets)
    assert all(per_cell[c.name] == {fleets[0]} for c in CELLS[2:])
    # Breadth first: every cell's first fleet comes before any second fleet.
    first_second = next(k for k, j in enumerate(todo) if j[3] == fleets[1])
    assert {j[1].name for j in todo[:first_second]} == {c.name for c in CELLS}


def test_the_bookkeeping_imports_no_numpy() -> None:
    # The sweep's schedule, intervals and targets are unit-tested on machines without numpy:
    # importing them must not pull it in (the solvers are imported inside the runs).
    code = (
        "import sys, bench.sweep, bench.grid, bench.stats, bench.seeds;"
        "assert 'numpy' not in sys.modules and 'scipy' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_cost_ignored_run_is_scheduled_on_its_profiles_only() -> None:
    from bench.sweep import COST_IGNORED, COST_IGNORED_PROFILES

    todo = [j for j in jobs(CELLS[:2], seeds.evaluation_fleets(2), [], 12, False) if j[0] == "sim"]
    sunk = {(j[1].name, j[2], j[3]) for j in todo if j[4] == COST_IGNORED}
    expected = {
        (c.name, p, s) for c in CELLS[:2] for p in COST_IGNORED_PROFILES for s in (10001, 10002)
    }
    assert sunk == expected


def test_runs_of_an_older_planner_no_longer_count() -> None:
    from bench.sweep import PLANNER_REVISION, current

    base = {"kind": "sim", "cell": "default", "profile": "tee", "seed": 10001, "hours": 12}
    old = {**base, "policy": "gepetto"}  # written before revisions were recorded
    new = {**base, "policy": "gepetto", "planner_revision": PLANNER_REVISION}
    official = {**base, "policy": "official"}
    old_quality = {"kind": "quality", "profile": "tee", "seed": 15001}
    assert current([old, new, official, old_quality]) == [new, official]


def test_a_quality_snapshot_runs_against_the_exact_optimum() -> None:
    # The planner's settings are built the way the policy names them (a renamed field once
    # broke every quality run of the sweep).
    pytest.importorskip("scipy")
    from bench.sweep import PLANNER_REVISION, run_quality

    row = run_quality("legacy", 15001)
    assert row["planner_revision"] == PLANNER_REVISION
    assert 0.9 < row["quality"] <= 1.0 + 1e-9
    assert row["reference"] in ("milp", "milp_dual_bound", "lp")


def test_every_cell_profile_and_fleet_gets_its_upper_bound() -> None:
    from bench.grid import BOUND

    fleets = seeds.evaluation_fleets(2)
    todo = [j for j in jobs(CELLS, fleets, [], 12, False) if j[0] == "sim"]
    bounds = {(j[1].name, j[2], j[3]) for j in todo if j[4] == BOUND}
    assert bounds == {(c.name, p, s) for c in CELLS for p in ("tee", "legacy") for s in fleets}
