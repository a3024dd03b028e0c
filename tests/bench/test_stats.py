"""The interval arithmetic of the sweep (`bench.stats`), checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    bootstrap_interval,
    paired_differences,
    paired_ratios,
    summarize,
    t975,
    t_interval,
)


def test_t_interval_matches_the_textbook_value() -> None:
    # mean 2, sample sd 1, n 4: half-width t(0.975, 3) x 1 / 2 = 3.182 / 2
    low, high = t_interval([1.0, 2.0, 2.0, 3.0 + 0.0])
    sd = math.sqrt(((1 - 2) ** 2 + 0 + 0 + (3 - 2) ** 2) / 3)
    half = 3.182 * sd / 2
    assert low == pytest.approx(2 - half)
    assert high == pytest.approx(2 + half)


def test_t_quantile_falls_back_to_the_normal_for_many_fleets() -> None:
    assert t975(1) == pytest.approx(12.706)
    assert t975(30) == pytest.approx(2.042)
    assert t975(200) == pytest.approx(1.96)
    with pytest.raises(ValueError):
        t975(0)


def test_bootstrap_is_reproducible_and_brackets_the_mean() -> None:
    values = [0.98, 1.01, 1.02, 1.05, 0.99, 1.03]
    first = bootstrap_interval(values, resamples=500, seed=3)
    assert first == bootstrap_interval(values, resamples=500, seed=3)
    mean = sum(values) / len(values)
    assert first[0] < mean < first[1]
    assert min(values) <= first[0] and first[1] <= max(values)


def test_one_fleet_has_no_interval() -> None:
    s = summarize([1.04])
    assert s.n == 1 and s.mean == 1.04 and s.t_low is None and s.boot_low is None
    assert s.as_dict()["t95"] is None


def test_summary_of_constant_ratios_is_a_point() -> None:
    s = summarize([1.02, 1.02, 1.02])
    assert s.t_low == pytest.approx(1.02) and s.t_high == pytest.approx(1.02)
    assert (s.worst, s.best) == (1.02, 1.02)


def test_paired_ratios_handle_zero_baselines() -> None:
    assert paired_ratios([2.0, 0.0, 3.0], [1.0, 0.0, 0.0]) == [2.0, 1.0, math.inf]
    assert paired_differences([2.0, 5.0], [1.0, 7.0]) == [1.0, -2.0]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
