"""Render time of the fleet map (100 servers x 8 GPUs) and of the report charts (a week of
history), as `fleet` and `report 7d` draw them for Slack and `--png`.

    python -m bench.bench_render [--rounds 5]

Writes its figures to ``bench/results.json`` under ``render`` (read-merge-write; the other
benchmarks' keys are left as they are). The first render of a process loads fonts and is
reported apart (``first_ms``); the timed rounds follow it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta
from typing import Any

from bench.results import save_results
from gepetto_core.render_png import fleet_layout, render_fleet_png, render_report_png
from gepetto_core.services.fleet_report import fleet_report
from gepetto_sandbox.fleet_samples import T0, sample_fleet

TARGET_MS = 2000.0  # a Slack answer that arrives within a couple of seconds


def _timed(render: Any, rounds: int) -> dict[str, float]:
    started = time.perf_counter()
    render()
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        render()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "first_ms": round(first, 1),
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "target_ms": TARGET_MS,
    }


def run(rounds: int) -> dict[str, Any]:
    fleet = sample_fleet(100, 8)
    layout = fleet_layout(fleet)
    week = [
        sample_fleet(100, 8, seed=k % 50, at=T0 + timedelta(minutes=k)).totals()
        for k in range(0, 7 * 24 * 60, 10)  # one row per 10 min keeps the bench short
    ]
    report = fleet_report(week, "7d", T0 + timedelta(days=7))
    fleet_png = render_fleet_png(fleet)
    report_png = render_report_png(report)
    return {
        "fleet_map_100x8": {
            **_timed(lambda: render_fleet_png(fleet), rounds),
            "width_px": layout.width,
            "height_px": layout.height,
            "png_bytes": len(fleet_png),
        },
        "report_7d": {
            **_timed(lambda: render_report_png(report), rounds),
            "history_rows": len(week),
            "png_bytes": len(report_png),
        },
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "matplotlib Agg, single thread; wall time of render_*_png (view model -> bytes)",
    }


def save(figures: dict[str, Any]) -> None:
    save_results("render", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = run(args.rounds)
    fleet, report = figures["fleet_map_100x8"], figures["report_7d"]
    print(
        f"fleet map 100 servers x 8 GPUs ({fleet['width_px']}x{fleet['height_px']} px, "
        f"{fleet['png_bytes']:,} B): {fleet['median_ms']:.0f} ms median "
        f"(first {fleet['first_ms']:.0f} ms)"
    )
    print(
        f"report 7d ({report['history_rows']} rows, {report['png_bytes']:,} B): "
        f"{report['median_ms']:.0f} ms median (first {report['first_ms']:.0f} ms)"
    )
    save(figures)


if __name__ == "__main__":
    main()
