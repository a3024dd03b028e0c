"""Pure alert rules and approval judges: dedupe, storms, pacing, coalescing, two-person rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts import (
    AlertPolicy,
    ChannelPacer,
    DeployFailure,
    EditCoalescer,
    JoinStorm,
    NewAlert,
    RepeatAlert,
    StartStorm,
    plan_failure_alerts,
)
from bot.approvals import judge_approval, judge_execute
from gepetto_core.models.state import AlertRecord, PendingAction

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def failure(chute: str, server: str = "s1") -> DeployFailure:
    return DeployFailure(chute, server, "job failed: Error, exit 137", NOW)


def record(
    f: DeployFailure, *, age: float = 10, kind: str = "failure", **kw: object
) -> AlertRecord:
    at = NOW - timedelta(seconds=age)
    values: dict[str, object] = {
        "alert_key": f.key,
        "channel": "C1",
        "message_ts": "1.0",
        "first_at": at,
        "last_at": at,
        "payload": {"kind": kind},
    }
    values.update(kw)
    return AlertRecord.model_validate(values)


def test_first_failure_is_one_new_alert_and_a_repeat_edits_it() -> None:
    f = failure("c1")
    assert plan_failure_alerts([f], {}, NOW) == [NewAlert(f)]
    effects = plan_failure_alerts([f, f], {f.key: record(f)}, NOW)
    assert effects == [RepeatAlert(f.key, f, 3)]


def test_a_resolved_or_old_alert_does_not_swallow_a_new_failure() -> None:
    f = failure("c1")
    resolved = record(f, state="resolved")
    assert plan_failure_alerts([f], {f.key: resolved}, NOW) == [NewAlert(f)]
    old = record(f, age=7200)
    assert plan_failure_alerts([f], {f.key: old}, NOW) == [NewAlert(f)]


def test_third_distinct_failure_in_the_window_starts_a_storm_then_others_join() -> None:
    a, b, c, d = failure("a"), failure("b"), failure("c"), failure("d")
    known = {a.key: record(a, age=20), b.key: record(b, age=5)}
    [storm] = plan_failure_alerts([c], known, NOW)
    assert isinstance(storm, StartStorm) and storm.earlier == (a.key, b.key)
    known[storm.key] = record(d, kind="storm", alert_key=storm.key, age=1)
    assert plan_failure_alerts([d], known, NOW) == [JoinStorm(storm.key, d)]


def test_failures_outside_the_window_do_not_make_a_storm() -> None:
    a, b, c = failure("a"), failure("b"), failure("c")
    known = {a.key: record(a, age=300), b.key: record(b, age=200)}
    assert plan_failure_alerts([c], known, NOW, AlertPolicy()) == [NewAlert(c)]


def test_pacer_spaces_posts_and_honours_retry_after() -> None:
    pacer = ChannelPacer(interval=1.0)
    assert [pacer.reserve("C1", 0.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert pacer.reserve("C2", 0.0) == 0.0
    pacer.retry_after("C2", 0.5, 30)
    assert pacer.reserve("C2", 0.5) == 30.0


def test_edits_within_the_interval_collapse_into_the_latest() -> None:
    edits = EditCoalescer(interval=2.0)
    assert edits.offer("C1", "1.0", {"text": "a"}, 0.0) == 0.0
    assert edits.offer("C1", "1.0", {"text": "b"}, 0.1) is None
    assert edits.take("C1", "1.0", 0.2) == {"text": "b"}
    assert edits.offer("C1", "1.0", {"text": "c"}, 0.5) == pytest.approx(1.7)
    assert edits.waiting() == 1


def pending(**kw: object) -> PendingAction:
    values: dict[str, object] = {
        "action_id": "pa_x",
        "verb": "undeploy --all-on",
        "arguments": {},
        "requested_by": "U1",
        "source": "slack",
        "policy": "approval",
        "status": "pending",
        "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=15),
    }
    values.update(kw)
    return PendingAction.model_validate(values)


def test_approval_judge() -> None:
    assert judge_approval(pending(), "U2", NOW) is None
    assert "own request" in (judge_approval(pending(), "U1", NOW) or "")
    assert "expired" in (judge_approval(pending(), "U2", NOW + timedelta(minutes=16)) or "")
    assert "already" in (judge_approval(pending(status="done"), "U2", NOW) or "")
    assert "not an approval" in (judge_approval(pending(policy="confirm"), "U2", NOW) or "")


def test_execute_judge_runs_a_pending_action_once() -> None:
    assert judge_execute(pending(policy="confirm"), NOW) is None
    assert "already running" in (judge_execute(pending(status="executing"), NOW) or "")
    assert "expired" in (judge_execute(pending(), NOW + timedelta(hours=1)) or "")
