"""The sweep's bookkeeping (`bench.grid`): pairing by fleet, the targets of issue #25."""

from __future__ import annotations

from typing import Any

import pytest

from bench.grid import (
    DOLLARS_PER_MULTIPLIER_HOUR,
    GRID_POLICIES,
    cell_summary,
    complete_fleets,
    failed_ratios,
    format_table,
    targets_check,
)


def _run(
    policy: str, seed: int, mult_h: float, failed: int = 10, cell: str = "c"
) -> dict[str, Any]:
    return {
        "kind": "sim",
        "cell": cell,
        "profile": "tee",
        "seed": seed,
        "policy": policy,
        "multiplier_hours": mult_h,
        "profit": DOLLARS_PER_MULTIPLIER_HOUR * mult_h - 100.0,
        "gpu_cost": 100.0,
        "failed_deploys": failed,
        "preemptions": 0,
        "held_fill": mult_h / 2,
        "held_steady": mult_h / 2,
    }


def _fleet(seed: int, gepetto: float, official: float, failed: int = 5) -> list[dict[str, Any]]:
    rows = [_run(p, seed, official) for p in GRID_POLICIES if p.startswith("official")]
    rows += [_run(p, seed, official / 3) for p in GRID_POLICIES if p.startswith("fork")]
    rows.append(_run("gepetto", seed, gepetto, failed))
    return rows


def test_lambda_is_the_planners() -> None:
    from gepetto_core.scheduling import PlanPolicy

    assert PlanPolicy().dollars_per_multiplier_hour == DOLLARS_PER_MULTIPLIER_HOUR


def test_a_fleet_missing_a_policy_is_left_out() -> None:
    rows = _fleet(1, 110, 100) + [r for r in _fleet(2, 110, 100) if r["policy"] != "fork_tee"]
    assert list(complete_fleets(rows, "c", "tee", GRID_POLICIES)) == [1]
    assert complete_fleets(rows, "other", "tee", GRID_POLICIES) == {}


def test_ratios_are_paired_fleet_by_fleet() -> None:
    # Fleet 1: 1.10x, fleet 2: 0.90x. Pairing gives a mean of 1.00, not 200/200 by accident of
    # sizes: the second fleet is ten times larger.
    rows = _fleet(1, 110, 100) + _fleet(2, 900, 1000)
    summary = cell_summary(complete_fleets(rows, "c", "tee", GRID_POLICIES))
    mh = summary["ratios"]["mult_h_vs_official"]
    assert mh["mean"] == pytest.approx(1.0)
    assert (mh["min"], mh["max"]) == (pytest.approx(0.9), pytest.approx(1.1))
    assert mh["t95"][0] < 1.0 < mh["t95"][1]
    assert summary["ratios"]["failed_vs_official"]["mean"] == pytest.approx(0.5)


def test_failed_ratio_counts_against_at_least_one() -> None:
    assert failed_ratios([3.0, 0.0, 4.0], [0.0, 0.0, 8.0]) == [3.0, 0.0, 0.5]


def _grid(*cells: tuple[str, float, int]) -> list[dict[str, Any]]:
    grid = []
    for name, ratio, failed in cells:
        rows = _fleet(1, 100 * ratio, 100, failed) + _fleet(2, 100 * ratio, 100, failed)
        grid.append(
            {
                "cell": name,
                "profile": "tee",
                "dimension": "x",
                "assumptions": "",
                **cell_summary(complete_fleets(rows, "c", "tee", GRID_POLICIES)),
            }
        )
    return grid


def test_targets_flag_a_cell_below_the_official_policy() -> None:
    check = targets_check(_grid(("a", 1.05, 5), ("b", 0.99, 5), ("c", 1.04, 5)))
    assert any(m.startswith("b/tee: multiplier-hours 0.990x") for m in check["misses"])
    assert not any(m.startswith("a/tee") for m in check["misses"])
    assert check["median_mult_h_vs_official"] == pytest.approx(1.04)
    assert check["worst_mult_h_vs_official"] == pytest.approx(0.99)


def test_targets_hold_the_median_cell_and_failed_deploys() -> None:
    check = targets_check(_grid(("a", 1.02, 9), ("b", 1.02, 12), ("c", 1.10, 2)))
    misses = check["misses"]
    assert any(m.startswith("median cell: multiplier-hours 1.020x") for m in misses)
    assert any(m.startswith("b/tee: failed deploys 1.20x") for m in misses)
    assert any(m.startswith("median cell: failed deploys 0.90x") for m in misses)


def test_table_has_one_row_per_cell() -> None:
    grid = _grid(("a", 1.05, 5), ("b", 0.99, 5))
    text = format_table({"hours": 12, "grid": grid, "targets": targets_check(grid)})
    rows = [line for line in text.splitlines() if line.startswith("| a") or line.startswith("| b")]
    assert len(rows) == 2
    assert "Targets missed:" in text


def test_the_readme_table_is_replaced_between_its_markers() -> None:
    from bench.sweep import TABLE_END, TABLE_START, replace_between_markers

    text = f"intro\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n"
    once = replace_between_markers(text, "| new |")
    assert "old table" not in once and "| new |" in once
    assert once.startswith("intro\n") and once.endswith(f"{TABLE_END}\nafter\n")
    assert replace_between_markers(once, "| new |") == once  # idempotent


def _money_losing_cell(gepetto: float, sunk: float) -> list[dict[str, Any]]:
    """A legacy-like cell: the official policy's GPUs cost more than they earn (profit < 0);
    gepetto at its defaults holds `gepetto` multiplier-hours at a much smaller GPU bill, and
    with the cost ignored `sunk` multiplier-hours."""
    rows = []
    for seed in (1, 2):
        for r in _fleet(seed, gepetto, 100):
            if r["policy"] == "gepetto":
                r["profit"] = DOLLARS_PER_MULTIPLIER_HOUR * gepetto - 50.0
            else:
                r["profit"] = DOLLARS_PER_MULTIPLIER_HOUR * r["multiplier_hours"] - 500.0
            rows.append(r)
        sunk_run = _run("gepetto_sunk", seed, sunk)
        sunk_run["profit"] = DOLLARS_PER_MULTIPLIER_HOUR * sunk - 520.0
        rows.append(sunk_run)
    by_default = complete_fleets(rows, "c", "tee", GRID_POLICIES)
    by_sunk = complete_fleets(rows, "c", "tee", ("gepetto_sunk", *GRID_POLICIES[1:]))
    base = {"cell": "m", "profile": "tee", "dimension": "x", "assumptions": ""}
    return [
        {**base, "cost_ignored": False, **cell_summary(by_default)},
        {**base, "cost_ignored": True, **cell_summary(by_sunk, "gepetto_sunk")},
    ]


def test_multiplier_hours_are_judged_with_the_cost_ignored_where_that_row_exists() -> None:
    # At its defaults gepetto holds half the official's multiplier-hours (it declines the
    # money-losing placements) but earns more; with the cost ignored it holds 1.05x.
    check = targets_check(_money_losing_cell(gepetto=50, sunk=105))
    assert not any("multiplier-hours" in m for m in check["misses"])
    assert check["median_mult_h_vs_official"] == pytest.approx(1.05)
    # Profit: the official makes -100 on 400 earned, gepetto +150: +62.5 % of its earnings.
    assert check["median_profit_vs_official"] == pytest.approx(1.625)
    assert check["cells"] == 1


def test_the_fork_is_judged_on_the_multiplier_hours_row() -> None:
    # The fork holds a third of the official's 100: gepetto at its defaults (50) is 1.5x it,
    # with the cost ignored (105) 3.15x. Both compare multiplier-hours: judged on the latter.
    assert not any("fork" in m for m in targets_check(_money_losing_cell(50, 105))["misses"])
    (miss,) = [m for m in targets_check(_money_losing_cell(50, 60))["misses"] if "fork" in m]
    assert miss.startswith("m/tee (cost ignored): 1.80x the TEE-matched fork < 2.0")


def test_a_cost_ignored_row_below_the_official_is_a_miss() -> None:
    check = targets_check(_money_losing_cell(gepetto=50, sunk=95))
    assert any(
        m.startswith("m/tee (cost ignored): multiplier-hours 0.950x") for m in check["misses"]
    )


def test_profit_below_the_official_is_a_miss_even_when_the_official_loses_money() -> None:
    grid = _money_losing_cell(gepetto=50, sunk=105)
    grid[0]["ratios"]["profit_gain_pct_vs_official"]["mean"] = -2.0
    check = targets_check(grid)
    assert any(m.startswith("m/tee: profit 0.980x official") for m in check["misses"])


def test_a_fork_miss_says_how_much_of_the_fork_needs_no_policy() -> None:
    # A prefilled start: doing nothing earns 80 of the fork's 100; gepetto earns 150. The raw
    # ratio misses 2x; over the no-policy floor gepetto adds 70 to the fork's 20 (3.5x).
    rows = []
    for seed in (1, 2):
        rows += [_run(p, seed, 140.0) for p in GRID_POLICIES if p.startswith("official")]
        rows += [_run(p, seed, 100.0) for p in GRID_POLICIES if p.startswith("fork")]
        rows += [_run("gepetto", seed, 150.0), _run("idle", seed, 80.0)]
    summary = cell_summary(complete_fleets(rows, "c", "tee", GRID_POLICIES))
    assert summary["ratios"]["idle_share_of_fork_tee"]["mean"] == pytest.approx(0.8)
    assert summary["ratios"]["added_vs_fork_tee"]["mean"] == pytest.approx(3.5)
    grid = [{"cell": "p", "profile": "tee", **summary}]
    (miss,) = [m for m in targets_check(grid)["misses"] if "fork" in m]
    assert miss == (
        "p/tee: 1.50x the TEE-matched fork < 2.0 "
        "(no policy at all earns 80% of the fork's; over that, 3.50x)"
    )


def test_without_idle_runs_the_fork_figures_stand_alone() -> None:
    summary = cell_summary(complete_fleets(_fleet(1, 110, 100), "c", "tee", GRID_POLICIES))
    assert "idle_share_of_fork_tee" not in summary["ratios"]


def _prefilled_cell(bound: float) -> dict[str, Any]:
    rows = []
    for seed in (1, 2):
        rows += [_run(p, seed, 140.0) for p in GRID_POLICIES if p.startswith("official")]
        rows += [_run(p, seed, 100.0) for p in GRID_POLICIES if p.startswith("fork")]
        rows += [_run("gepetto", seed, 150.0), _run("bound", seed, bound + seed)]
    return {
        "cell": "p",
        "profile": "tee",
        **cell_summary(complete_fleets(rows, "c", "tee", GRID_POLICIES)),
    }


def test_a_fork_miss_the_upper_bound_cannot_reach_is_beyond_any_policy() -> None:
    # Any policy earns at most 181-182 here, 1.82x the fork at most: 2x is out of reach.
    row = _prefilled_cell(bound=180.0)
    assert row["ratios"]["share_of_bound"]["mean"] == pytest.approx((150 / 181 + 150 / 182) / 2)
    check = targets_check([row])
    (miss,) = [m for m in check["misses"] if "fork" in m]
    assert miss.endswith(
        "an upper bound on any policy is 1.81x the fork's (at most 1.82x on a fleet):"
        " beyond any policy"
    )
    assert check["beyond_any_policy"] == ["p/tee: x the TEE-matched fork"]
    assert "| 0.826 [" in format_table({"grid": [row]})


def test_a_fork_miss_within_the_upper_bound_is_only_a_miss() -> None:
    # The bound is 2.01x and 2.02x the fork: some policy might meet the target on average.
    check = targets_check([_prefilled_cell(bound=200.0)])
    (miss,) = [m for m in check["misses"] if "fork" in m]
    assert miss.endswith("(at most 2.02x on a fleet)")
    assert check["beyond_any_policy"] == []


def test_a_bound_reaching_the_target_on_one_fleet_only_is_still_short_on_average() -> None:
    # 1.99x and 2.00x: a policy could reach 2x on the second fleet, not on the mean of both.
    check = targets_check([_prefilled_cell(bound=198.0)])
    (miss,) = [m for m in check["misses"] if "fork" in m]
    assert miss.endswith("(at most 2.00x on a fleet): beyond any policy")
    assert check["beyond_any_policy"] == ["p/tee: x the TEE-matched fork"]
