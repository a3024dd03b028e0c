"""The upper bounds of `bench.bound` (on any policy's multiplier-hours in a window) and of
`bench.diagnose` (on what a fleet holds at once): worked on worlds small enough to solve by hand,
and the window's checked against every simulated policy in every kind of cell."""

from __future__ import annotations

import pytest

# The bound solves an LP: it needs the bench extra (numpy, scipy), as `make bench` does.
pytest.importorskip("numpy")
pytest.importorskip("scipy")

from bench.assumptions import CELLS, Assumptions, Cell
from bench.bound import gate_cap, window_bound
from bench.diagnose import held_bound
from bench.fleets import Profile, Truth, World, make_world
from bench.simulate import Fork, Gepetto, Idle, Official, simulate
from tests.unit.gepetto_core.scheduling.builders import Builder

B = Builder()


def _world(targets: dict[str, int], others: dict[str, int]) -> World:
    small = B.chute("small", multiplier=1.0, allowance=1)  # 1 GPU, 1.0 per GPU
    # 8 GPUs, 5.0 with a 1.25 bounty: 4.0 plain.
    big = B.chute("big", multiplier=5.0, gpu_count=8, bounty_boost=1.25, allowance=1)
    return World(
        profile="legacy",
        servers=[B.server("s1", gpus=8)],
        chutes=[small, big],
        truth=Truth(),
        targets=targets,
        others=others,
    )


def test_the_diagnostic_fills_the_denser_chute_first_then_a_fraction_of_the_other() -> None:
    # Our share: 3 small (3 GPUs, 3.0) and 1 big, whose plain multiplier is 5 / 1.25 = 4.0,
    # 0.5 per GPU: the 5 GPUs left hold 5/8 of it. 3 + 2.5 = 5.5.
    world = _world(targets={"small": 5, "big": 2}, others={"small": 2, "big": 1})
    assert held_bound(world) == pytest.approx(5.5)


def test_the_diagnostic_counts_only_our_share_of_each_target() -> None:
    world = _world(targets={"small": 5, "big": 2}, others={"small": 5, "big": 2})
    assert held_bound(world) == pytest.approx(0.0)


def test_the_gate_caps_our_share_and_lets_anyone_start_a_chute_nobody_runs() -> None:
    assert gate_cap(target=5, others=2) == 3
    assert gate_cap(target=2, others=4) == 0  # over target: no claim passes
    # Nothing active: claims pass while the total is at most target + 2, so three get in.
    assert gate_cap(target=0, others=0) == 3


def test_a_fixed_world_pays_the_best_mix_every_hour_bounty_included() -> None:
    # 3 small (3 GPUs, 3.0) and 5/8 of the big one at 5.0 (3.125): 6.125 an hour, for 2 h.
    world = _world(targets={"small": 5, "big": 2}, others={"small": 2, "big": 1})
    bound = window_bound(world, 1, Assumptions(), hours=2)
    assert bound == {"multiplier_hours": pytest.approx(12.25), "bounty_part": 0.0}


def test_a_bounty_claimed_once_pays_its_boost_for_one_hour_on_top_of_the_plain_mix() -> None:
    # Plain: 3.0 + 5/8 x 4.0 = 5.5 an hour for 1 h, plus the big chute's boost (5.0 - 4.0) once.
    world = _world(targets={"small": 5, "big": 2}, others={"small": 2, "big": 1})
    bound = window_bound(world, 1, Assumptions(bounty="once_decaying"), hours=1)
    assert bound == {"multiplier_hours": pytest.approx(6.5), "bounty_part": pytest.approx(1.0)}


def test_a_chute_nobody_runs_counts_the_three_claims_the_gate_lets_in() -> None:
    world = _world(targets={"small": 0, "big": 0}, others={"small": 0, "big": 1})
    bound = window_bound(world, 1, Assumptions(), hours=1)
    assert bound["multiplier_hours"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "cell",
    [c for c in CELLS if c.name in ("default", "scalable_0.35", "prefilled", "hard", "hard_cold")],
)
@pytest.mark.parametrize("profile", ["tee", "legacy"])
def test_no_simulated_policy_earns_more_than_the_bound(cell: Cell, profile: Profile) -> None:
    policies: list[Official | Fork | Gepetto | Idle] = [
        Official(name="official"),
        Fork(name="fork"),
        Gepetto(tuned=False, cost_weight=0.0, name="gepetto"),
        Idle(name="idle"),
    ]
    seed = 7
    bound = window_bound(
        make_world(profile, 60, 6, seed, p_scalable=cell.assumptions.p_scalable),
        seed,
        cell.assumptions,
        hours=4,
    )["multiplier_hours"]
    for policy in policies:
        world = make_world(profile, 60, 6, seed, p_scalable=cell.assumptions.p_scalable)
        earned = simulate(world, seed, policy, 4, assumptions=cell.assumptions).multiplier_hours
        assert 0.0 <= earned <= bound, (policy.name, earned, bound)
    assert bound > 0.0
