"""The sandbox validator's pure rules: GPU table, capacity gates, bounty, multipliers, catalog."""

from __future__ import annotations

import random

import pytest

from gepetto_core.models.validator import ValidatorChute, is_launch_config_version
from gepetto_sandbox.validator.catalog import MAX_CODE_CHARS, generate_catalog
from gepetto_sandbox.validator.faults import Fault, FaultBook
from gepetto_sandbox.validator.gpus import compute_multiplier, supported_gpus
from gepetto_sandbox.validator.rules import (
    bounty_amount,
    check_private_capacity,
    check_public_capacity,
    effective_multiplier,
    utilization_row,
)


@pytest.mark.parametrize(
    ("selector", "count", "multiplier"),
    [
        ({}, 26, 0.0444),
        ({"gpu_count": 8, "min_vram_gb_per_gpu": 80}, 11, 1.0667),
        ({"gpu_count": 8, "include": ["h200"]}, 1, 4.8889),
    ],
)
def test_spec_test_vectors(selector: dict[str, object], count: int, multiplier: float) -> None:
    assert len(supported_gpus(selector)) == count
    assert compute_multiplier(selector) == pytest.approx(multiplier, abs=1e-4)


def _public(**kw: object) -> object:
    args: dict[str, object] = dict(
        hotkey="me", total=0, active=0, mine=0, target=3, rolling_permitted=None
    )
    args.update(kw)
    return check_public_capacity("c", **args)  # type: ignore[arg-type]


def test_public_gate_rules_in_order() -> None:
    assert _public(total=5, active=0, target=3) is None  # (a) nothing routable yet
    refusal = _public(total=3, active=2, target=3)
    assert refusal is not None and refusal.status == 423
    assert "target capacity of 3" in refusal.detail
    assert _public(total=2, active=2, mine=0, target=5) is None
    near = _public(total=3, active=3, mine=3, target=5)
    assert near is not None and "near capacity" in near.detail


def test_rolling_update_quota() -> None:
    no_quota = _public(total=4, active=4, target=5, rolling_permitted={"other": 2})
    assert no_quota is not None and "rolling update" in no_quota.detail
    assert _public(total=5, active=5, target=5, rolling_permitted={"me": 1}) is None


def test_private_gate() -> None:
    assert (
        check_private_capacity(
            "c", active=0, target=1, has_bounty=False, public_footprint_ok=True
        ).status
        == 423
    )  # type: ignore[union-attr]
    assert (
        check_private_capacity(
            "c", active=1, target=1, has_bounty=True, public_footprint_ok=True
        ).status
        == 423
    )  # type: ignore[union-attr]
    assert (
        check_private_capacity(
            "c", active=0, target=1, has_bounty=True, public_footprint_ok=False
        ).status
        == 403
    )  # type: ignore[union-attr]
    assert (
        check_private_capacity("c", active=0, target=1, has_bounty=True, public_footprint_ok=True)
        is None
    )


def test_bounty_grows_and_caps() -> None:
    assert bounty_amount(1000, 1000) == 100
    assert bounty_amount(1000, 1010) == 130
    assert bounty_amount(0, 10**6) == 86_400


def test_effective_multiplier_factors() -> None:
    value, factors = effective_multiplier(0.5, public=False, boost=3.0, has_bounty=False, tee=False)
    assert value == pytest.approx(0.5 * 2.0 * 3.0)
    assert set(factors) == {"base", "private", "urgency_boost"}


def test_scalable_compares_total_with_target() -> None:
    chute = {"chute_id": "c", "name": "n", "public": True}
    assert (
        utilization_row(chute, {}, target=3, total=2, active=2, update_in_progress=False)[
            "scalable"
        ]
        is True
    )
    row = utilization_row(chute, {}, target=3, total=3, active=1, update_in_progress=True)
    assert row["scalable"] is False and row["scale_allowance"] == 0
    assert row["update_in_progress"] is True


def test_catalog_is_deterministic_and_realistic() -> None:
    first = generate_catalog(random.Random(42), 400)
    again = generate_catalog(random.Random(42), 400)
    assert [c["version"] for c in first.chutes] == [c["version"] for c in again.chutes]
    chutes = [ValidatorChute.model_validate(c) for c in first.chutes]
    assert len({c.chute_id for c in chutes}) == 400
    assert all(len(c.code) <= MAX_CODE_CHARS for c in chutes)
    assert any(len(c.code) > 50_000 for c in chutes)
    assert 0 < sum(c.tee for c in chutes) < 40
    assert 0 < sum(not is_launch_config_version(c.chutes_version) for c in chutes) < 40
    assert 0 < sum(c.job_only for c in chutes) < 40
    assert {c.gpu_count for c in chutes} >= {1, 2, 8}
    assert any("h200" in c.supported_gpus for c in chutes)
    assert any("4090" in c.supported_gpus for c in chutes)


def test_limited_faults_count_down() -> None:
    book = FaultBook()
    book.set("chutes", Fault(status=503, times=2))
    assert book.take("chutes") is not None
    assert book.take("chutes") is not None
    assert book.take("chutes") is None
    with pytest.raises(ValueError):
        book.set("nope", Fault())
