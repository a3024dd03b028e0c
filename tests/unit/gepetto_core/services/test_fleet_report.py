"""`fleet_report` on hand-made rows: spans, gaps, the window, buckets; the digest's schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.pictures import digest_due, next_digest_after
from gepetto_core.models.history import FleetTotals, SlotState
from gepetto_core.services.fleet_report import fleet_report, summary_lines

END = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _row(minutes_before_end: float, running: int, idle: int, **kw: object) -> FleetTotals:
    fields: dict[str, object] = dict(
        taken_at=END - timedelta(minutes=minutes_before_end),
        mode="active",
        gpus=running + idle,
        states={SlotState.RUNNING: running, SlotState.IDLE: idle},
        idle={"unprofitable": idle} if idle else {},
        earning_per_hour=running * 2.0,
        cost_per_hour=(running + idle) * 1.0,
    )
    fields.update(kw)
    return FleetTotals(**fields)  # type: ignore[arg-type]


def test_each_row_stands_for_the_time_to_the_next_at_most_five_minutes() -> None:
    rows = [
        _row(60, 8, 0),  # 1 min to the next row
        _row(59, 6, 2),  # 5 min (the gap to the next is 29 min: gepetto was down)
        _row(30, 4, 4, deploys=3, failed_deploys=1),  # 5 min, and the window ends 30 min later
        _row(60 * 25, 8, 0),  # outside the 24 h window
    ]
    report = fleet_report(rows, "24h", END)
    assert report.snapshots == 3
    assert report.covered_hours == pytest.approx(11 / 60)
    assert report.gpu_hours == pytest.approx(8 * 11 / 60)
    assert report.busy_gpu_hours == pytest.approx((8 * 1 + 6 * 5 + 4 * 5) / 60)
    assert report.earnings == pytest.approx(2.0 * (8 * 1 + 6 * 5 + 4 * 5) / 60)
    assert report.cost == pytest.approx(8 * 11 / 60)
    assert report.idle_gpu_hours == pytest.approx({"unprofitable": (2 * 5 + 4 * 5) / 60})
    assert (report.deploys, report.failed_deploys) == (3, 1)
    assert len(report.buckets) == 48 and sum(b.snapshots for b in report.buckets) == 3
    assert report.buckets[-2].running == pytest.approx(7.0)  # 11:00-11:30: rows of 8 and 6


def test_the_last_row_counts_until_the_end_of_the_window_only() -> None:
    report = fleet_report([_row(2, 4, 0)], "24h", END)
    assert report.covered_hours == pytest.approx(2 / 60)


def test_summary_says_when_there_is_no_history() -> None:
    assert summary_lines(fleet_report([], "7d", END)) == ["No fleet history in the last 7d yet."]
    lines = summary_lines(fleet_report([_row(10, 6, 2)], "24h", END))
    assert lines[0].startswith("GPU occupancy 75%")
    assert "net -$" not in lines[1] and "Idle GPU-hours by reason: unprofitable" in lines[3]


def test_digest_is_due_once_a_day_from_its_hour() -> None:
    morning = datetime(2026, 12, 5, 6, 59, tzinfo=UTC)
    assert digest_due(morning, 7, None) is None
    assert digest_due(morning + timedelta(minutes=1), 7, None) == "2026-12-05"
    assert digest_due(morning + timedelta(hours=5), 7, "2026-12-05") is None
    assert digest_due(morning + timedelta(days=1, minutes=1), 7, "2026-12-05") == "2026-12-06"
    assert next_digest_after(morning, 7) == morning + timedelta(minutes=1)
    assert next_digest_after(morning + timedelta(hours=1), 7) == morning + timedelta(
        days=1, minutes=1
    )
