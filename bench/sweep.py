"""The sweep of issue #25: gepetto against stronger baselines, on evaluation fleets only, in every
cell of a grid of world assumptions, with paired intervals across fleets.

    python -m bench.sweep                     # the full grid (hours on this class of machine)
    python -m bench.sweep --quick             # 3 cells, 2 fleets per profile, 6 h
    python -m bench.sweep --hours 24 --fleets 3 --deadline 09:48   # what fits by then
    python -m bench.sweep --table             # print results.json's grid as a Markdown table
    python -m bench.sweep --hours 48 --cells default,prefilled --fleets 4 --key sweep_48h

Each (cell, profile, fleet, policy) run is appended to `bench/sweep_runs.jsonl` as it ends,
so an interrupted sweep resumes where it stopped, and `--deadline HH:MM` (machine time) stops
starting runs then and summarises the fleets every policy finished. The summary goes into
bench/results.json under the key "sweep" (read-merge-write); the older keys are untouched.

Fleets and quality snapshots come from `bench.seeds`' evaluation range, never from the seeds
the planner was tuned on. Settings are frozen: gepetto runs the service's defaults (GPU cost
counted, `Gepetto(tuned=False)`), the baselines their published rules (`bench.simulate`).
Not a test: the targets are printed next to the figures, nothing asserts them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import RESULTS, save_results

if __package__ in (None, ""):  # `python bench/sweep.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.assumptions import CELLS, QUICK_CELLS, Cell
from bench.fleets import Profile
from bench.grid import (
    BASELINE,
    BOUND,
    GRID_POLICIES,
    IDLE,
    attribution_summary,
    cell_summary,
    complete_fleets,
    format_table,
    targets_check,
)
from bench.seeds import evaluation_fleets, evaluation_quality

HERE = Path(__file__).resolve().parent

RUNS = HERE / "sweep_runs.jsonl"  # every run, one JSON line each; committed with results.json
PROFILES: tuple[Profile, ...] = ("tee", "legacy")
# Gepetto variants for attribution (default cell only): preemption off, back-off off, and the
# earlier benchmark's simulator-tuned settings.
ATTRIBUTION_POLICIES = ("gepetto_nopreempt", "gepetto_nobackoff", "gepetto_simtuned")
# gepetto with the GPUs' cost ignored (kappa = 0), on the profiles where gepetto at its defaults
# declines placements that lose money: the multiplier-hours target is judged on it there (the
# operator's own target is profit; `bench.grid.targets_check`).
COST_IGNORED = "gepetto_sunk"
COST_IGNORED_PROFILES: tuple[Profile, ...] = ("legacy",)
# Bumped whenever the planner or the simulation of gepetto changes: gepetto's runs of an older
# revision stay in the run log but no longer count (the baselines' runs do not depend on it).
PLANNER_REVISION = 3
QUALITY_TIME_LIMIT = 5.0  # seconds for the exact MILP; its dual bound stands in beyond it


def make_policy(name: str) -> Any:
    from bench.simulate import OFFICIAL_CYCLE_SECONDS, Fork, Gepetto, Idle, Official

    def official(name: str, failure_memory: bool = False, rank: str = "value") -> Official:
        return Official(
            name=name,
            cycle_seconds=OFFICIAL_CYCLE_SECONDS,
            bounty_events=True,
            failure_memory=failure_memory,
            rank=rank,
        )

    table: dict[str, Any] = {
        "gepetto": lambda: Gepetto(tuned=False, name="gepetto"),
        "gepetto_nopreempt": lambda: Gepetto(
            preemption=False, tuned=False, name="gepetto_nopreempt"
        ),
        "gepetto_nobackoff": lambda: Gepetto(tuned=False, backoff=False, name="gepetto_nobackoff"),
        "gepetto_simtuned": lambda: Gepetto(tuned=True, name="gepetto_simtuned"),
        COST_IGNORED: lambda: Gepetto(tuned=False, cost_weight=0.0, name=COST_IGNORED),
        "official": lambda: official("official"),
        "official_15s": lambda: Official(name="official_15s"),
        "official_memory": lambda: official("official_memory", failure_memory=True),
        "official_multiplier": lambda: official("official_multiplier", rank="multiplier"),
        "fork": lambda: Fork(name="fork"),
        "fork_stallfree": lambda: Fork(stall_free=True, name="fork_stallfree"),
        "fork_tee": lambda: Fork(stall_free=True, tee_matched=True, name="fork_tee"),
        IDLE: lambda: Idle(name=IDLE),
    }
    return table[name]()


def run_sim(cell: Cell, profile: Profile, seed: int, policy: str, hours: int) -> dict[str, Any]:
    from bench.fleets import make_world
    from bench.simulate import simulate

    world = make_world(profile, 500, 100, seed, p_scalable=cell.assumptions.p_scalable)
    started = time.perf_counter()
    measured: dict[str, Any]
    if policy == BOUND:  # a reference computed from the world, not a simulated policy
        from bench.bound import window_bound

        measured = window_bound(world, seed, cell.assumptions, hours)
    else:
        r = simulate(world, seed, make_policy(policy), hours, assumptions=cell.assumptions)
        measured = {k: v for k, v in r.__dict__.items() if k != "policy"} | {"profit": r.profit}
    return {
        "kind": "sim",
        "cell": cell.name,
        "profile": profile,
        "seed": seed,
        "policy": policy,
        "hours": hours,
        **measured,
        "wall_s": time.perf_counter() - started,
        **({"planner_revision": PLANNER_REVISION} if policy.startswith("gepetto") else {}),
    }


def run_quality(profile: Profile, seed: int) -> dict[str, Any]:
    """Planner value against the exact MILP optimum of the round (HiGHS, QUALITY_TIME_LIMIT);
    when the MILP does not finish, against the best upper bound it proved (its dual bound, or
    the LP bound if lower), so the figure is then a lower bound on the true quality. The
    configuration rotates with the seed: sunk/elastic cost, an empty/30 %-filled fleet."""
    import random

    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp

    from bench.bench_planner import NOW, round_model
    from bench.fleets import make_snapshot, make_world
    from gepetto_core.scheduling import PlanPolicy, plan_round

    kappa = 0.0 if (seed // 2) % 2 else 1.0  # the profile alternates with seed % 2
    prefill = 0.3 if (seed // 4) % 2 else 0.0
    policy = PlanPolicy(cost_weight=kappa, max_deploys_per_round=None, max_pulls_per_server=None)
    world = make_world(profile, 500, 100, seed)
    snap = make_snapshot(world, NOW, seed, prefill=prefill, history=300)
    t = time.perf_counter()
    plan = plan_round(snap, policy, NOW, random.Random(seed))
    plan_ms = (time.perf_counter() - t) * 1000
    row: dict[str, Any] = {
        "kind": "quality",
        "profile": profile,
        "seed": seed,
        "mode": "sunk" if kappa == 0 else "elastic",
        "prefill": prefill,
        "plan_value": plan.total_value,
        "plan_ms": plan_ms,
        "planner_revision": PLANNER_REVISION,
    }
    model = round_model(snap, policy)
    if model is None:
        return {**row, "reference": "empty", "quality": 1.0, "lp": 0.0, "milp": 0.0}
    obj, a, b = model
    lp = linprog(obj, A_ub=a, b_ub=b, bounds=(0, None), method="highs")
    t = time.perf_counter()
    exact = milp(
        obj,
        constraints=LinearConstraint(a, -np.inf, b),
        integrality=np.ones(len(obj)),
        bounds=Bounds(0, np.inf),
        options={"time_limit": QUALITY_TIME_LIMIT},
    )
    milp_s = time.perf_counter() - t
    lp_value = float(-lp.fun)
    solved = exact.status == 0 and exact.fun is not None
    dual = getattr(exact, "mip_dual_bound", None)
    proved = float(-dual) if dual is not None and math.isfinite(dual) else math.inf
    if solved:
        reference, kind = float(-exact.fun), "milp"
    elif proved < lp_value:
        reference, kind = proved, "milp_dual_bound"
    else:
        reference, kind = lp_value, "lp"
    return {
        **row,
        "pairs": len(obj),
        "lp": lp_value,
        "milp": float(-exact.fun) if exact.fun is not None else None,
        "milp_dual_bound": proved if math.isfinite(proved) else None,
        "milp_status": int(exact.status),
        "milp_s": milp_s,
        "reference": kind,
        "quality": plan.total_value / reference if reference > 0 else 1.0,
    }


def revision(row: dict[str, Any]) -> int | None:
    """The planner revision a run measured; None for a baseline's run (any revision)."""
    if row["kind"] == "sim" and not row["policy"].startswith("gepetto"):
        return None
    return int(row.get("planner_revision", 1))


def current(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that measure the planner as it is now (`PLANNER_REVISION`) and the baselines."""
    return [r for r in rows if revision(r) in (None, PLANNER_REVISION)]


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    if row["kind"] == "quality":
        return ("quality", row["profile"], row["seed"], revision(row))
    return (
        "sim",
        row["cell"],
        row["profile"],
        row["seed"],
        row["policy"],
        row["hours"],
        revision(row),
    )


def load_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
    return rows


def jobs(
    cells: list[Cell],
    fleets: list[int],
    quality: list[int],
    hours: int,
    attribution: bool,
    focus: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Fleet-major order, so that wherever a deadline cuts the sweep every cell has about the
    same number of fleets; gepetto (the slow run) first within a fleet; a third of the quality
    snapshots before each of the first three fleets; attribution runs one fleet behind. With
    `focus`, only the first `focus` cells get more than the first fleet (breadth first, then
    depth where it matters most)."""
    # One snapshot per quality seed, the profile alternating with the seed (the MILP is the
    # dear part: up to QUALITY_TIME_LIMIT each).
    quality_jobs = [("quality", PROFILES[s % 2], s) for s in quality]
    third = -(-len(quality_jobs) // 3)
    chunks = [quality_jobs[k * third : (k + 1) * third] for k in range(3)]
    for i, seed in enumerate(fleets):
        if i < 3:
            yield from chunks[i]
        for cell in cells if i == 0 or focus is None else cells[:focus]:
            for profile in PROFILES:
                for policy in GRID_POLICIES:
                    yield ("sim", cell, profile, seed, policy, hours)
                if profile in COST_IGNORED_PROFILES:
                    yield ("sim", cell, profile, seed, COST_IGNORED, hours)
                yield ("sim", cell, profile, seed, IDLE, hours)
                yield ("sim", cell, profile, seed, BOUND, hours)
        if attribution and i >= 1:
            for profile in PROFILES:
                for policy in ATTRIBUTION_POLICIES:
                    yield ("sim", CELLS[0], profile, fleets[i - 1], policy, hours)
    for chunk in chunks[len(fleets) :]:
        yield from chunk
    if attribution:
        for profile in PROFILES:
            for policy in ATTRIBUTION_POLICIES:
                yield ("sim", CELLS[0], profile, fleets[-1], policy, hours)


def _run(job: tuple[Any, ...]) -> dict[str, Any]:
    if job[0] == "quality":
        return run_quality(job[1], job[2])
    _, cell, profile, seed, policy, hours = job
    return run_sim(cell, profile, seed, policy, hours)


def _job_key(job: tuple[Any, ...]) -> tuple[Any, ...]:
    if job[0] == "quality":
        return ("quality", job[1], job[2], PLANNER_REVISION)
    _, cell, profile, seed, policy, hours = job
    rev = PLANNER_REVISION if policy.startswith("gepetto") else None
    return ("sim", cell.name, profile, seed, policy, hours, rev)


def execute(todo: Iterable[tuple[Any, ...]], workers: int, deadline: float | None) -> None:
    done = {_key(r) for r in load_runs(RUNS)}
    pending = [j for j in todo if _job_key(j) not in done]
    print(f"{len(pending)} runs to do ({len(done)} already in {RUNS.name})", flush=True)
    queue = iter(pending)
    running: dict[Future[dict[str, Any]], tuple[Any, ...]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool, RUNS.open("a") as out:

        def refill() -> None:
            while len(running) < workers:
                if deadline is not None and time.time() >= deadline:
                    return
                job = next(queue, None)
                if job is None:
                    return
                running[pool.submit(_run, job)] = job

        refill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                try:
                    row = fut.result()
                except Exception as exc:  # one broken run must not lose the others
                    print(f"run {_job_key(job)} failed: {exc!r}", flush=True)
                    continue
                out.write(json.dumps(row) + "\n")
                out.flush()
                what = row.get("policy") or f"quality {row.get('quality', 0):.4f}"
                print(
                    f"{datetime.now():%H:%M:%S} {row.get('cell', '-'):14} {row['profile']:6} "
                    f"{row['seed']:6d} {what:20} {row.get('multiplier_hours', 0):9.1f}",
                    flush=True,
                )
            refill()


def summarize(hours: int) -> dict[str, Any]:
    """Every cell of `CELLS` with at least one fleet that every grid policy finished, from the
    run log (so separate invocations for separate cells add up)."""
    rows = current(load_runs(RUNS))
    sims = [r for r in rows if r["kind"] == "sim" and r["hours"] == hours]
    grid = []
    for cell in CELLS:
        for profile in PROFILES:
            variants = [("gepetto", False)]
            if profile in COST_IGNORED_PROFILES:
                variants.append((COST_IGNORED, True))
            for ours, cost_ignored in variants:
                by_fleet = complete_fleets(sims, cell.name, profile, (ours, *GRID_POLICIES[1:]))
                if not by_fleet:
                    continue
                grid.append(
                    {
                        "cell": cell.name,
                        "dimension": cell.dimension,
                        "assumptions": cell.assumptions.label(),
                        "profile": profile,
                        "gepetto": ours,
                        "cost_ignored": cost_ignored,
                        **cell_summary(by_fleet, ours),
                    }
                )
    quality = [r for r in rows if r["kind"] == "quality"]
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "hours": hours,
        "baseline": BASELINE,
        "policies": list(GRID_POLICIES),
        "planner_revision": PLANNER_REVISION,
        "grid": grid,
        "attribution": attribution_summary(sims, CELLS[0].name, PROFILES, ATTRIBUTION_POLICIES),
        "quality": _quality_summary(quality),
        "targets": targets_check(grid),
        "runs": f"bench/{RUNS.name}",  # every run, one line each (too many to inline here)
    }
    return out


def _quality_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"runs": 0}
    qs = [r["quality"] for r in rows]
    return {
        "runs": len(rows),
        "seeds": sorted({r["seed"] for r in rows}),
        "reference_milp": sum(1 for r in rows if r["reference"] == "milp"),
        "reference_bound": sum(1 for r in rows if r["reference"] != "milp"),
        "worst": min(qs),
        "median": statistics.median(qs),
        "snapshots": [
            {
                k: r.get(k)
                for k in ("profile", "seed", "mode", "prefill", "quality", "reference", "plan_ms")
            }
            for r in rows
        ],
        "below_0.98": [
            {k: r[k] for k in ("profile", "seed", "mode", "prefill", "quality", "reference")}
            for r in rows
            if r["quality"] < 0.98
        ],
        "plan_ms_median": statistics.median(r["plan_ms"] for r in rows),
    }


def save(summary: dict[str, Any], key: str = "sweep") -> None:
    save_results(key, summary)


TABLE_START = "<!-- sweep-table:start (python -m bench.sweep --table --readme README.md) -->"
TABLE_END = "<!-- sweep-table:end -->"


def replace_between_markers(text: str, table: str) -> str:
    """`text` with whatever stands between the sweep-table markers replaced by `table`."""
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END, start)
    return text[:start] + "\n" + table + "\n" + text[end:]


def _deadline(text: str | None) -> float | None:
    if text is None:
        return None
    hh, mm = (int(x) for x in text.split(":"))
    now = datetime.now()
    return now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()


def main(argv: list[str] | None = None) -> None:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cells, 2 fleets, 6 h")
    parser.add_argument("--hours", type=int, default=None, help="simulated hours (48)")
    parser.add_argument("--fleets", type=int, default=None, help="fleets per profile (10)")
    parser.add_argument("--quality-seeds", type=int, default=None, help="(30)")
    parser.add_argument("--cells", default=None, help="comma-separated cell names")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--deadline", default=None, help="HH:MM: start no run after it")
    parser.add_argument("--no-attribution", action="store_true")
    parser.add_argument(
        "--focus", type=int, default=None, help="only the first N cells get more than one fleet"
    )
    parser.add_argument("--table", action="store_true", help="print the saved grid and stop")
    parser.add_argument(
        "--summarize", action="store_true", help="summarise the run log into results.json only"
    )
    parser.add_argument(
        "--readme", type=Path, default=None, help="with --table: write it into this file too"
    )
    parser.add_argument("--runs", type=Path, default=RUNS, help="the run log to append to")
    parser.add_argument(
        "--key", default="sweep", help="results.json key (another window length: its own key)"
    )
    args = parser.parse_args(argv)
    RUNS = args.runs
    if args.table:
        table = format_table(json.loads(RESULTS.read_text())[args.key])
        print(table)
        if args.readme is not None:
            args.readme.write_text(replace_between_markers(args.readme.read_text(), table))
        return
    cells = QUICK_CELLS if args.quick else CELLS
    if args.cells:
        by_name = {c.name: c for c in CELLS}
        cells = [by_name[name] for name in args.cells.split(",")]  # in the order given
    hours = args.hours or (6 if args.quick else 48)
    if args.summarize:
        summary = summarize(hours)
        print(format_table(summary))
        save(summary, args.key)
        return
    fleets = evaluation_fleets(args.fleets or (2 if args.quick else 10))
    quality = evaluation_quality(args.quality_seeds or (4 if args.quick else 30))
    execute(
        jobs(cells, fleets, quality, hours, not args.no_attribution, args.focus),
        args.workers,
        _deadline(args.deadline),
    )
    summary = summarize(hours)
    print()
    print(format_table(summary))
    save(summary, args.key)


if __name__ == "__main__":
    main()
