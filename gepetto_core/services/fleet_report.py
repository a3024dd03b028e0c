"""History rows -> `FleetReport`: GPU occupancy, estimated earnings against GPU cost, deploys,
idle GPU-hours by reason. Pure (rows and the window in, figures out).

Each snapshot stands for the time until the next one, at most `MAX_GAP` (history is recorded
at most once a minute, normally every autoscaler round): a longer gap means gepetto was not
running or not leading, and that time is left out rather than credited to the last picture.
Money is rate x time: `earning_per_hour` and `cost_per_hour` of a snapshot over its span.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from gepetto_core.models.history import (
    BUSY_STATES,
    FleetReport,
    FleetTotals,
    ReportBucket,
    SlotState,
)

MAX_GAP = timedelta(minutes=5)
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    # window -> (length, chart bucket)
    "24h": (timedelta(hours=24), timedelta(minutes=30)),
    "7d": (timedelta(days=7), timedelta(hours=4)),
}


def report_window(window: str, end: datetime) -> tuple[datetime, datetime]:
    length, _ = WINDOWS[window]
    return end - length, end


def span_hours(rows: Sequence[FleetTotals], i: int, end: datetime) -> float:
    """Hours snapshot `i` stands for: until the next one or `end`, at most MAX_GAP."""
    start = rows[i].taken_at
    stop = rows[i + 1].taken_at if i + 1 < len(rows) else end
    stop = min(stop, start + MAX_GAP, end)
    return max(0.0, (stop - start).total_seconds() / 3600.0)


def fleet_report(rows: Sequence[FleetTotals], window: str, end: datetime) -> FleetReport:
    """`rows` in any order; those outside [end - window, end) are ignored."""
    start, end = report_window(window, end)
    _, bucket = WINDOWS[window]
    rows = sorted((r for r in rows if start <= r.taken_at < end), key=lambda r: r.taken_at)
    n_buckets = int((end - start) / bucket)
    sums = [_BucketSums() for _ in range(n_buckets)]
    gpu_h = busy_h = running_h = earnings = cost = covered = 0.0
    deploys = failed = 0
    idle: dict[str, float] = {}
    for i, row in enumerate(rows):
        hours = span_hours(rows, i, end)
        covered += hours
        gpu_h += row.gpus * hours
        busy_h += sum(row.count(s) for s in BUSY_STATES) * hours
        running_h += row.count(SlotState.RUNNING) * hours
        earnings += row.earning_per_hour * hours
        cost += row.cost_per_hour * hours
        deploys += row.deploys
        failed += row.failed_deploys
        for why, gpus in row.idle.items():
            idle[why] = idle.get(why, 0.0) + gpus * hours
        sums[min(n_buckets - 1, int((row.taken_at - start) / bucket))].add(row)
    return FleetReport(
        window=window,
        start=start,
        end=end,
        snapshots=len(rows),
        covered_hours=covered,
        gpu_hours=gpu_h,
        busy_gpu_hours=busy_h,
        running_gpu_hours=running_h,
        earnings=earnings,
        cost=cost,
        deploys=deploys,
        failed_deploys=failed,
        idle_gpu_hours=dict(sorted(idle.items(), key=lambda kv: (-kv[1], kv[0]))),
        buckets=[s.bucket(start + k * bucket) for k, s in enumerate(sums)],
    )


class _BucketSums:
    def __init__(self) -> None:
        self.n = 0
        self.running = self.starting = self.crashing = self.idle = 0.0
        self.earning = self.cost = 0.0
        self.deploys = self.failed = 0

    def add(self, row: FleetTotals) -> None:
        self.n += 1
        running = row.count(SlotState.RUNNING)
        starting = row.count(SlotState.STARTING)
        crashing = row.count(SlotState.CRASHING)
        self.running += running
        self.starting += starting
        self.crashing += crashing
        self.idle += row.gpus - running - starting - crashing
        self.earning += row.earning_per_hour
        self.cost += row.cost_per_hour
        self.deploys += row.deploys
        self.failed += row.failed_deploys

    def bucket(self, start: datetime) -> ReportBucket:
        n = self.n or 1
        return ReportBucket(
            start=start,
            snapshots=self.n,
            running=self.running / n,
            starting=self.starting / n,
            crashing=self.crashing / n,
            idle=self.idle / n,
            earning_per_hour=self.earning / n,
            cost_per_hour=self.cost / n,
            deploys=self.deploys,
            failed_deploys=self.failed,
        )


def summary_lines(report: FleetReport) -> list[str]:
    """The report in a few sentences (the Slack message and the CLI's text)."""
    if not report.snapshots:
        return [f"No fleet history in the last {report.window} yet."]
    net = report.earnings - report.cost
    lines = [
        f"GPU occupancy {report.occupancy:.0%} ({_hours(report.busy_gpu_hours)} of "
        f"{_hours(report.gpu_hours)} GPU-hours busy; history covers "
        f"{_hours(report.covered_hours)} h).",
        f"Estimated earnings {_usd(report.earnings)} against GPU cost {_usd(report.cost)} "
        f"(net {_usd(net)}).",
        f"Autoscaler deploys: {report.deploys}, of which {report.failed_deploys} failed.",
    ]
    if report.idle_gpu_hours:
        top = list(report.idle_gpu_hours.items())[:4]
        idle = ", ".join(f"{why} {_hours(hours)}" for why, hours in top)
        lines.append(f"Idle GPU-hours by reason: {idle}.")
    return lines


def _hours(value: float) -> str:
    """Enough digits to say something at any scale (a demo minute, a week of a big fleet)."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _usd(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"
