"""Evaluation seeds never overlap the seeds the planner was tuned on (`bench.seeds`)."""

from __future__ import annotations

import pytest

from bench import seeds


def test_evaluation_fleets_are_not_tuning_fleets() -> None:
    assert not set(seeds.EVALUATION_FLEET_SEEDS) & set(seeds.TUNING_FLEET_SEEDS)
    assert not any(seeds.is_tuning(s) for s in seeds.EVALUATION_FLEET_SEEDS)


def test_evaluation_quality_seeds_are_fresh_and_apart_from_the_fleets() -> None:
    quality = set(seeds.EVALUATION_QUALITY_SEEDS)
    assert not quality & set(seeds.TUNING_QUALITY_SEEDS)
    assert not any(seeds.is_tuning(s) for s in quality)
    assert not quality & set(seeds.EVALUATION_FLEET_SEEDS)
    assert len(quality) >= 30


def test_the_benchmarks_own_fleets_count_as_tuning() -> None:
    for seed in (0, 1, 2, 3, 4, 9, 999):
        assert seeds.is_tuning(seed)


def test_a_run_takes_the_first_n_evaluation_seeds() -> None:
    assert seeds.evaluation_fleets(3) == list(seeds.EVALUATION_FLEET_SEEDS[:3])
    assert len(seeds.evaluation_quality(30)) == 30
    with pytest.raises(ValueError):
        seeds.evaluation_fleets(0)
    with pytest.raises(ValueError):
        seeds.evaluation_fleets(len(seeds.EVALUATION_FLEET_SEEDS) + 1)
