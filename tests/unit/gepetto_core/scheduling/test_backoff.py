"""Failure back-off from ledger records: window, growth, cap, forgiveness, 423 not counted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gepetto_core.scheduling import BackoffPolicy, FailureRecord, backoff_state

from .conftest import NOW

POLICY = BackoffPolicy()
# The creation-time window alone (no earning rule): what the window tests look at.
WINDOW_ONLY = BackoffPolicy(earning_delay=None)


def rec(
    n: int,
    *,
    chute: str = "c1",
    server: str = "s1",
    ended_min_ago: float = 10.0,
    lived_min: float = 5.0,
    reason: str = "crash",
    counted: bool = True,
    activated_after_min: float | None = None,
) -> FailureRecord:
    ended = NOW - timedelta(minutes=ended_min_ago)
    created = ended - timedelta(minutes=lived_min)
    activated = (
        None if activated_after_min is None else created + timedelta(minutes=activated_after_min)
    )
    return FailureRecord(
        f"d{n}", chute, server, "a100", created, ended, reason, counted, activated_at=activated
    )


@pytest.mark.parametrize(
    ("lived_min", "blocked"),
    [(5.0, True), (15.9, True), (16.0, True), (16.1, False), (45.0, False)],
)
def test_failure_window_is_measured_from_creation(lived_min: float, blocked: bool) -> None:
    state = backoff_state([rec(1, lived_min=lived_min)], NOW, WINDOW_ONLY)
    assert (state.pair_block("c1", "s1") is not None) is blocked


def test_window_is_configurable() -> None:
    wide = BackoffPolicy(failure_window=timedelta(minutes=40), earning_delay=None)
    assert backoff_state([rec(1, lived_min=30)], NOW, wide).pair_block("c1", "s1") is not None
    assert backoff_state([rec(1, lived_min=30)], NOW, WINDOW_ONLY).pair_block("c1", "s1") is None


@pytest.mark.parametrize(
    ("lived_min", "activated_after_min", "blocked"),
    [
        (45.0, None, True),  # never activated: it earned nothing
        (80.0, 25.0, True),  # died 55 min after activation: still nothing earned
        (86.0, 25.0, False),  # lived 61 min after activation: it was paid
        (45.0, 5.0, True),
    ],
)
def test_an_end_before_the_first_paid_hour_is_a_failure(
    lived_min: float, activated_after_min: float | None, blocked: bool
) -> None:
    record = rec(1, lived_min=lived_min, activated_after_min=activated_after_min)
    state = backoff_state([record], NOW, POLICY)
    assert (state.pair_block("c1", "s1") is not None) is blocked


def test_an_uncounted_end_before_the_first_paid_hour_is_no_failure() -> None:
    record = rec(1, lived_min=45.0, reason="crash", counted=False, activated_after_min=20.0)
    assert backoff_state([record], NOW, POLICY).pair_block("c1", "s1") is None


def test_first_failure_cools_down_one_hour() -> None:
    state = backoff_state([rec(1, ended_min_ago=10)], NOW, POLICY)
    block = state.pair_block("c1", "s1")
    assert block is not None
    assert block.until == NOW - timedelta(minutes=10) + timedelta(hours=1)
    later = backoff_state([rec(1, ended_min_ago=61)], NOW, POLICY)
    assert later.pair_block("c1", "s1") is None


def test_repeated_failures_double_the_cooldown() -> None:
    records = [rec(i, ended_min_ago=10 + 30 * (2 - i)) for i in range(3)]
    block = backoff_state(records, NOW, POLICY).pair_block("c1", "s1")
    assert block is not None and block.failures == 3
    assert block.until == NOW - timedelta(minutes=10) + timedelta(hours=4)


def test_cooldown_is_capped() -> None:
    records = [rec(i, ended_min_ago=5 + i) for i in range(10)]
    block = backoff_state(records, NOW, POLICY).pair_block("c1", "s1")
    assert block is not None
    assert block.until == NOW - timedelta(minutes=5) + POLICY.max_cooldown


def test_healthy_run_forgives_earlier_failures() -> None:
    failures = [rec(i, ended_min_ago=200 + i) for i in range(3)]
    healthy = FailureRecord(
        "ok", "c1", "s1", "a100", NOW - timedelta(minutes=190), None, "", True
    )  # still running, well past an hour
    assert backoff_state(failures, NOW, POLICY).pair_block("c1", "s1") is not None
    assert backoff_state([*failures, healthy], NOW, POLICY).pair_block("c1", "s1") is None


def test_failure_after_forgiveness_starts_over_at_one_hour() -> None:
    old = [rec(i, ended_min_ago=600 + i) for i in range(3)]
    healthy = FailureRecord(
        "ok",
        "c1",
        "s1",
        "a100",
        NOW - timedelta(minutes=590),
        NOW - timedelta(minutes=400),
        "",
        activated_at=NOW - timedelta(minutes=570),
    )
    block = backoff_state([*old, healthy, rec(9, ended_min_ago=10)], NOW, POLICY).pair_block(
        "c1", "s1"
    )
    assert block is not None and block.failures == 1
    assert block.until == NOW - timedelta(minutes=10) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("reason", "counted"), [("no_capacity", True), ("423", True), ("crash", False)]
)
def test_no_capacity_and_uncounted_ends_are_never_failures(reason: str, counted: bool) -> None:
    state = backoff_state([rec(1, reason=reason, counted=counted)], NOW, POLICY)
    assert state.pair_block("c1", "s1") is None
    assert state.chute_block("c1") is None and state.server_block("s1") is None


def test_chute_scope_needs_failures_on_two_servers() -> None:
    one_server = [rec(1, server="s1"), rec(2, server="s1", ended_min_ago=20)]
    assert backoff_state(one_server, NOW, POLICY).chute_block("c1") is None
    two_servers = [rec(1, server="s1"), rec(2, server="s2", ended_min_ago=20)]
    assert backoff_state(two_servers, NOW, POLICY).chute_block("c1") is not None


def test_server_scope_needs_three_distinct_chutes() -> None:
    two = [rec(i, chute=f"c{i}") for i in range(2)]
    assert backoff_state(two, NOW, POLICY).server_block("s1") is None
    three = [rec(i, chute=f"c{i}") for i in range(3)]
    assert backoff_state(three, NOW, POLICY).server_block("s1") is not None


def test_records_of_running_or_unknown_future_are_neutral() -> None:
    starting = FailureRecord("d", "c1", "s1", "a100", NOW - timedelta(minutes=5), None, "")
    assert backoff_state([starting], NOW, POLICY).pair_block("c1", "s1") is None
