"""The benchmark's community-fork baseline follows the fork's failure-trace rules
(`docs/scheduling.md#benchmark`): pure bookkeeping, no simulation run needed."""

from __future__ import annotations

from bench.simulate import Fork


def test_a_refused_launch_soon_after_a_deploy_marks_the_chute_failed_for_an_hour() -> None:
    fork = Fork()
    fork.created["c"] = 100
    fork.trace_deleted("c", 105)  # 423 five minutes after the deploy
    assert fork.is_failed("c", 110)
    assert fork.is_failed("c", 165)
    assert not fork.is_failed("c", 166)  # cleared once more than 1 h past deleted_at


def test_a_refused_launch_of_a_never_deployed_chute_is_not_a_failure() -> None:
    fork = Fork()
    fork.trace_deleted("c", 5)
    assert not fork.is_failed("c", 10)
    assert fork.deleted["c"] == 5


def test_a_long_lived_deployment_is_not_a_failure() -> None:
    fork = Fork()
    fork.created["c"] = 0
    fork.trace_deleted("c", 17)
    assert not fork.is_failed("c", 20)
    fork.trace_deleted("c", 16)
    assert fork.is_failed("c", 20)
