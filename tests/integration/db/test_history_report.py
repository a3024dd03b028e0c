"""The report's figures against the same figures computed by SQL straight from the history
rows (window functions over `gepetto_fleet_history`), and the recorder's rate limit and
pruning through the real adapter."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from gepetto_core.adapters.pg_history import PgHistory
from gepetto_core.scheduling import PlanPolicy, Snapshot
from gepetto_core.scheduling.plan import Placement
from gepetto_core.services.autoscaler import Outcome, RoundReport
from gepetto_core.services.fleet_history import FleetHistoryRecorder
from gepetto_core.services.fleet_report import fleet_report
from gepetto_sandbox.fleet_samples import T0, sample_fleet

# Each row stands for the time to the next row, at most 5 minutes, and not past the end.
_SPANS = """
WITH spans AS (
    SELECT *, EXTRACT(EPOCH FROM LEAST(
        COALESCE(LEAD(taken_at) OVER (ORDER BY taken_at), $2::timestamptz),
        taken_at + interval '5 minutes',
        $2::timestamptz) - taken_at) / 3600.0 AS hours
    FROM gepetto_fleet_history WHERE taken_at >= $1 AND taken_at < $2
)
"""


async def _store_irregular_history(history: PgHistory) -> None:
    """Rows a minute apart, with a 40-minute outage and a few 3-minute gaps."""
    at = T0
    for k in range(300):
        at += timedelta(minutes=40 if k == 120 else 3 if k % 17 == 0 else 1)
        await history.add(sample_fleet(12, 8, seed=k, at=at))


async def test_report_figures_equal_sql_over_the_rows(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    await _store_irregular_history(history)
    end = T0 + timedelta(hours=24)
    start = end - timedelta(hours=24)
    report = fleet_report(await history.totals(start, end), "24h", end)

    sql = await pool.fetchrow(
        _SPANS
        + """
        SELECT count(*) AS n, sum(hours) AS covered, sum(gpus * hours) AS gpu_h,
               sum(((states->>'running')::int + COALESCE((states->>'starting')::int, 0)
                    + COALESCE((states->>'crashing')::int, 0)) * hours) AS busy_h,
               sum(earning_per_hour * hours) AS earned, sum(cost_per_hour * hours) AS cost,
               sum(deploys) AS deploys, sum(failed_deploys) AS failed
        FROM spans
        """,
        start,
        end,
    )
    idle = await pool.fetch(
        _SPANS
        + "SELECT key, sum(value::int * hours) AS h FROM spans, jsonb_each_text(idle) GROUP BY key",
        start,
        end,
    )
    assert report.snapshots == sql["n"] == 300
    assert report.covered_hours == pytest.approx(float(sql["covered"]))
    assert report.gpu_hours == pytest.approx(float(sql["gpu_h"]))
    assert report.busy_gpu_hours == pytest.approx(float(sql["busy_h"]))
    assert report.earnings == pytest.approx(float(sql["earned"]))
    assert report.cost == pytest.approx(float(sql["cost"]))
    assert (report.deploys, report.failed_deploys) == (sql["deploys"], sql["failed"])
    assert report.idle_gpu_hours == pytest.approx({r["key"]: float(r["h"]) for r in idle})
    # The outage is not counted as covered: 300 rows span more than 5 hours of wall time.
    assert report.covered_hours < 300 * 3 / 60
    # The charts' buckets hold every row exactly once.
    assert sum(b.snapshots for b in report.buckets) == 300
    assert sum(b.deploys for b in report.buckets) == report.deploys


def _report(at_minutes: float, outcomes: list[str], snapshot: Snapshot | None) -> RoundReport:
    placement = Placement("c", "s", ("g",), 1.0, "test")
    return RoundReport(
        started_at=T0 + timedelta(minutes=at_minutes),
        mode="active",
        outcomes=[Outcome(placement, result) for result in outcomes],
        snapshot=snapshot,
    )


async def test_recorder_stores_at_most_once_a_minute_and_keeps_deploy_counts(
    pool: asyncpg.Pool,
) -> None:
    history = PgHistory(pool)
    recorder = FleetHistoryRecorder(history, PlanPolicy(), retention=timedelta(hours=2))
    empty = Snapshot(chutes=(), servers=())
    assert await recorder.after_round(_report(0, ["deployed"], empty)) is not None
    # 20 s later: not stored, but its deploys are kept for the next snapshot.
    assert await recorder.after_round(_report(0.33, ["failed", "deployed"], empty)) is None
    assert await recorder.after_round(_report(0.66, ["no capacity"], empty)) is None
    stored = await recorder.after_round(_report(1.0, ["preempted and deployed"], empty))
    assert stored is not None
    assert (stored.deploys, stored.failed_deploys) == (3, 1)
    rows = await history.totals(T0, T0 + timedelta(hours=1))
    assert [r.taken_at for r in rows] == [T0, T0 + timedelta(minutes=1)]
    assert [r.deploys for r in rows] == [1, 3]


async def test_recorder_prunes_past_the_retention_at_most_hourly(pool: asyncpg.Pool) -> None:
    history = PgHistory(pool)
    recorder = FleetHistoryRecorder(history, PlanPolicy(), retention=timedelta(hours=2))
    empty = Snapshot(chutes=(), servers=())
    for minute in range(0, 4 * 60, 30):
        await recorder.after_round(_report(minute, [], empty))
    left = await history.totals(T0 - timedelta(days=1), T0 + timedelta(days=1))
    # Pruned at 0, 60, 120, 180 min (hourly): at 180 everything before 60 went.
    assert left[0].taken_at == T0 + timedelta(minutes=60)
    assert len(left) == 6


async def test_a_paused_round_is_recorded_from_a_snapshot_built_for_it(
    pool: asyncpg.Pool,
) -> None:
    history = PgHistory(pool)
    built: list[int] = []

    async def build() -> Snapshot:
        built.append(1)
        return Snapshot(chutes=(), servers=())

    recorder = FleetHistoryRecorder(history, PlanPolicy(), build_snapshot=build)
    paused = RoundReport(started_at=T0, mode="paused")
    assert await recorder.after_round(paused) is not None
    assert await recorder.after_round(RoundReport(T0 + timedelta(seconds=5), "paused")) is None
    assert built == [1], "a snapshot is built only when one is due"
