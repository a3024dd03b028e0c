"""Fixtures for the planner's unit tests; the snapshot builders live in `builders.py`."""

from __future__ import annotations

import pytest

from gepetto_core.scheduling import PlanPolicy

from .builders import NOW, VAL, Builder

__all__ = ["NOW", "VAL", "Builder"]


@pytest.fixture
def b() -> Builder:
    return Builder()


@pytest.fixture
def policy() -> PlanPolicy:
    # Sunk cost, no per-round limits: the tests look at decisions, not at actuation pacing.
    return PlanPolicy(cost_weight=0.0, max_deploys_per_round=None, max_pulls_per_server=None)
