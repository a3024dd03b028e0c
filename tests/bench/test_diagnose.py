"""The diagnostic's upper bound on what a fleet can hold, on worlds small enough to solve by
hand, and its fleet-name parsing."""

from __future__ import annotations

import argparse

import pytest

# The diagnostic solves an LP: it needs the bench extra (numpy, scipy), as `make bench` does.
pytest.importorskip("numpy")
pytest.importorskip("scipy")

from bench.diagnose import held_bound, parse_fleet
from bench.fleets import Truth, World
from tests.unit.gepetto_core.scheduling.builders import Builder

B = Builder()


def _world(targets: dict[str, int], others: dict[str, int]) -> World:
    small = B.chute("small", multiplier=1.0, allowance=1)  # 1 GPU, 1.0 per GPU
    big = B.chute("big", multiplier=5.0, gpu_count=8, bounty_boost=1.25, allowance=1)
    return World(
        profile="legacy",
        servers=[B.server("s1", gpus=8)],
        chutes=[small, big],
        truth=Truth(),
        targets=targets,
        others=others,
    )


def test_the_bound_fills_the_denser_chute_first_then_a_fraction_of_the_other() -> None:
    # Our share: 3 small (3 GPUs, 3.0) and 1 big, whose plain multiplier is 5 / 1.25 = 4.0,
    # 0.5 per GPU: the 5 GPUs left hold 5/8 of it. 3 + 2.5 = 5.5.
    world = _world(targets={"small": 5, "big": 2}, others={"small": 2, "big": 1})
    assert held_bound(world) == pytest.approx(5.5)


def test_the_bound_counts_only_our_share_of_each_target() -> None:
    world = _world(targets={"small": 5, "big": 2}, others={"small": 5, "big": 2})
    assert held_bound(world) == pytest.approx(0.0)


def test_fleet_names_parse_and_bad_ones_say_what_is_expected() -> None:
    assert parse_fleet("legacy12") == ("legacy", 12)
    assert parse_fleet("tee4") == ("tee", 4)
    with pytest.raises(argparse.ArgumentTypeError, match="expected tee<seed> or legacy<seed>"):
        parse_fleet("mixed4")
