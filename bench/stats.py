"""Intervals for paired comparisons across fleets, in plain Python (no numpy: the unit tests
import this module and must run without it).

Every policy runs on the same fleets with common random numbers, so comparisons are paired:
one ratio (or difference) per fleet, then a mean with a Student-t interval and a percentile
bootstrap interval over fleets. The interval says how much the figure would move on other
fleets drawn by the same generator; it says nothing about worlds the generator cannot make.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95 % Student-t quantiles t(0.975, df), df = 1..30; the normal 1.96 beyond.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least two observations")
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean over fleets with its 95 % intervals (None with fewer than two fleets)."""

    n: int
    mean: float
    t_low: float | None
    t_high: float | None
    boot_low: float | None
    boot_high: float | None
    worst: float
    best: float

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "mean": self.mean,
            "t95": [self.t_low, self.t_high] if self.t_low is not None else None,
            "boot95": [self.boot_low, self.boot_high] if self.boot_low is not None else None,
            "min": self.worst,
            "max": self.best,
        }


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    m = statistics.fmean(values)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return m - half, m + half


def bootstrap_interval(
    values: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap of the mean, with a fixed generator so the figure reproduces."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def summarize(values: Sequence[float]) -> Interval:
    if not values:
        raise ValueError("nothing to summarise")
    m = statistics.fmean(values)
    if len(values) < 2:
        return Interval(1, m, None, None, None, None, values[0], values[0])
    tl, th = t_interval(values)
    bl, bh = bootstrap_interval(values)
    return Interval(len(values), m, tl, th, bl, bh, min(values), max(values))


def paired_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Fleet-by-fleet ratios ours / theirs; a zero denominator gives ratio 1 if both are zero,
    else infinity (a baseline that earned nothing is beaten by any amount)."""
    if len(ours) != len(theirs):
        raise ValueError("paired figures need the same fleets")
    out = []
    for a, b in zip(ours, theirs, strict=True):
        if b == 0:
            out.append(1.0 if a == 0 else math.inf)
        else:
            out.append(a / b)
    return out


def paired_differences(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    if len(ours) != len(theirs):
        raise ValueError("paired figures need the same fleets")
    return [a - b for a, b in zip(ours, theirs, strict=True)]
