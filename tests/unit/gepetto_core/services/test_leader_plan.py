"""The candidate's decision on a lease record (pure; no clock of its own)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gepetto_core.services.leader import (
    LeaseRecord,
    Observation,
    Step,
    claimed,
    plan_step,
    released,
)

ME = "replica-a"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def held_by(holder: str | None, rv: str = "7", duration: int | None = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_seconds=duration, transitions=2, resource_version=rv)


def test_no_lease_means_create() -> None:
    assert plan_step(None, ME, None, 0.0, 15) == (Step.CREATE, None)


@pytest.mark.parametrize("holder", [None, "", ME])
def test_a_free_or_own_lease_is_taken_at_once(holder: str | None) -> None:
    step, observed = plan_step(held_by(holder), ME, None, 5.0, 15)
    assert step is Step.TAKE
    assert observed == Observation("7", holder, 5.0)


def test_someone_elses_lease_is_waited_out_from_first_sight() -> None:
    record = held_by("replica-b")
    step, seen = plan_step(record, ME, None, 100.0, 15)
    assert step is Step.WAIT
    step, seen = plan_step(record, ME, seen, 114.9, 15)
    assert step is Step.WAIT and seen is not None and seen.seen_at == 100.0
    step, _ = plan_step(record, ME, seen, 115.0, 15)
    assert step is Step.TAKE


def test_a_renewal_restarts_the_wait() -> None:
    _, seen = plan_step(held_by("replica-b", rv="7"), ME, None, 100.0, 15)
    step, seen = plan_step(held_by("replica-b", rv="8"), ME, seen, 114.0, 15)
    assert step is Step.WAIT and seen is not None and seen.seen_at == 114.0
    assert plan_step(held_by("replica-b", rv="8"), ME, seen, 128.9, 15)[0] is Step.WAIT


def test_the_holders_own_duration_counts_and_the_default_fills_in() -> None:
    _, seen = plan_step(held_by("replica-b", duration=60), ME, None, 0.0, 15)
    assert plan_step(held_by("replica-b", duration=60), ME, seen, 30.0, 15)[0] is Step.WAIT
    _, seen = plan_step(held_by("replica-b", duration=None), ME, None, 0.0, 15)
    assert plan_step(held_by("replica-b", duration=None), ME, seen, 15.0, 15)[0] is Step.TAKE


def test_claiming_from_another_holder_is_a_new_term() -> None:
    mine = claimed(held_by("replica-b"), ME, 15, NOW)
    assert (mine.holder, mine.transitions, mine.acquire_time, mine.resource_version) == (
        ME,
        3,
        NOW,
        "7",
    )


def test_renewing_keeps_the_term() -> None:
    start = datetime(2025, 12, 31, tzinfo=UTC)
    record = LeaseRecord(ME, 15, acquire_time=start, renew_time=start, transitions=2)
    renewed = claimed(record, ME, 15, NOW)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (start, NOW, 2)


def test_claiming_a_released_lease_does_not_count_a_transition() -> None:
    free = released(held_by(ME), NOW)
    assert free.holder is None
    assert claimed(free, "replica-b", 15, NOW).transitions == 2
