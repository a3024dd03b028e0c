"""Liveness and readiness judgements (pure)."""

from __future__ import annotations

import pytest

from gepetto_core.ops.health import LoopStatus, judge_liveness, judge_readiness


@pytest.mark.parametrize(
    ("last_beat", "lag", "alive"),
    [
        (None, 0.0, True),  # monitor starting
        (99.5, 0.01, True),
        (99.5, 6.0, False),  # the loop woke 6 s late
        (90.0, 0.0, False),  # heartbeat overdue by 9 s
        (95.5, 0.0, True),  # overdue by 3.5 s: within max_lag
    ],
)
def test_liveness(last_beat: float | None, lag: float, alive: bool) -> None:
    verdict = judge_liveness(now=100.0, last_beat=last_beat, lag=lag, interval=1.0, max_lag=5.0)
    assert verdict.ok is alive


def ready(
    *,
    leader: bool | None,
    loops: LoopStatus,
    database_error: str | None = None,
    now: float = 1000.0,
) -> tuple[bool, dict[str, object]]:
    verdict = judge_readiness(
        now=now, database_error=database_error, leader=leader, loops=loops, max_sync_age=300
    )
    return verdict.ok, verdict.as_json()


def test_database_down_is_never_ready() -> None:
    ok, checks = ready(leader=False, loops=LoopStatus(), database_error="refused")
    assert not ok and checks["database"] == {"ok": False, "detail": "refused"}


def test_standby_is_ready_without_syncing() -> None:
    assert ready(leader=False, loops=LoopStatus(running_since=None, last_sync=None))[0]


@pytest.mark.parametrize("leader", [True, None])
@pytest.mark.parametrize(
    ("loops", "expected"),
    [
        (LoopStatus(running_since=900.0, last_sync=None), True),  # just started: grace
        (LoopStatus(running_since=600.0, last_sync=None), False),  # 400 s, never synced
        (LoopStatus(running_since=100.0, last_sync=800.0), True),
        (LoopStatus(running_since=100.0, last_sync=650.0), False),  # 350 s old
        # A sync from before this term started does not count as this term's sync.
        (LoopStatus(running_since=950.0, last_sync=500.0), True),
        (LoopStatus(running_since=600.0, last_sync=500.0), False),
    ],
)
def test_the_loop_runner_needs_a_fresh_sync(
    leader: bool | None, loops: LoopStatus, expected: bool
) -> None:
    ok, checks = ready(leader=leader, loops=loops)
    assert ok is expected, checks


def test_leader_role_is_reported() -> None:
    roles = [ready(leader=value, loops=LoopStatus())[1]["leader"] for value in (True, False, None)]
    assert [r["detail"] for r in roles] == ["leader", "standby", "election off"]  # type: ignore[index]
