"""Terminal rendering: cell formats per kind, tables with footers, messages, plans, progress."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gepetto_core.commands.scaling_views import scales_table
from gepetto_core.render_text import format_age, format_cell, format_duration, render_text
from gepetto_core.scheduling import PairRank, PlanPolicy
from gepetto_core.views import (
    Cell,
    Column,
    ColumnKind,
    Composite,
    Message,
    PlanView,
    Progress,
    Table,
)

UUID = uuid.UUID("3f2b8c1e-9a7d-4e5f-8b6a-1c2d3e4f5a6b")


@pytest.mark.parametrize(
    ("value", "kind", "wide", "expected"),
    [
        (1.234, ColumnKind.MONEY, False, "$1.23/h"),
        (1234.5, ColumnKind.MONEY, False, "$1,234.50/h"),
        (0.4242, ColumnKind.PERCENT, False, "42%"),
        (1, ColumnKind.PERCENT, False, "100%"),
        (timedelta(hours=3, minutes=12), ColumnKind.DURATION, False, "3h12m"),
        (45, ColumnKind.DURATION, False, "45s"),
        (725.0, ColumnKind.DURATION, False, "12m05s"),
        (timedelta(days=2, hours=3), ColumnKind.DURATION, False, "2d03h"),
        (-90, ColumnKind.DURATION, False, "-1m30s"),
        (UUID, ColumnKind.ID, False, "3f2b8c1e"),
        (UUID, ColumnKind.ID, True, str(UUID)),
        ("abc", ColumnKind.ID, False, "abc"),
        (True, ColumnKind.BOOL, False, "✓"),
        (False, ColumnKind.BOOL, False, "—"),
        (None, ColumnKind.MONEY, False, ""),
        (1234567, ColumnKind.INT, False, "1,234,567"),
        (2.0, ColumnKind.FLOAT, False, "2.00"),
        (datetime(2025, 3, 4, 5, 6, tzinfo=UTC), ColumnKind.DATETIME, False, "2025-03-04 05:06Z"),
        (
            datetime(2025, 3, 4, 7, 6, tzinfo=timezone(timedelta(hours=2))),
            ColumnKind.DATETIME,
            False,
            "2025-03-04 05:06Z",
        ),
        ("2025-03-04T05:06:00+00:00", ColumnKind.DATETIME, False, "2025-03-04 05:06Z"),
        ("not a date", ColumnKind.DATETIME, False, "not a date"),
        ("h200 × 8 — 東京", ColumnKind.TEXT, False, "h200 × 8 — 東京"),
        ("oops", ColumnKind.MONEY, False, "oops"),
    ],
)
def test_format_cell(value: Cell, kind: ColumnKind, wide: bool, expected: str) -> None:
    assert format_cell(value, kind, wide=wide) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (42.4, "validator data 42 s old"),
        (600, "validator data 10 min old"),
        (9000, "validator data 2.5 h old"),
        (None, "validator data unavailable"),
    ],
)
def test_format_age(seconds: float | None, expected: str) -> None:
    assert format_age(seconds, "validator data") == expected


def test_format_duration_of_zero() -> None:
    assert format_duration(0) == "0s"


def _scales(rows: int, *, cell: str = "chute") -> Table:
    return Table(
        title="scales",
        columns=[
            Column(key="chute", title="Chute"),
            Column(key="id", title="Deployment", kind="id"),
            Column(key="cost", title="Cost", kind="money"),
        ],
        rows=[{"chute": f"{cell}-{i}", "id": UUID, "cost": 2.5} for i in range(rows)],
        data_age_seconds=42,
        note="sorted by value",
    )


def test_table_has_title_header_rows_and_footer() -> None:
    lines = render_text(_scales(2)).splitlines()
    assert lines[0] == "scales"
    assert lines[1].split() == ["Chute", "Deployment", "Cost"]
    assert lines[3].split() == ["chute-0", "3f2b8c1e", "$2.50/h"]
    assert lines[-2:] == ["sorted by value", "validator data 42 s old"]


_PAIRS = [
    PairRank("c1", "chutes/Qwen3-32B", "s1", "gpu-01", "h200", 2, 3.1234, 5.0, True, None),
    PairRank("c2", "whisper", "s1", "gpu-01", "h200", 1, -0.5, 2.5, False, "server_locked"),
]


@pytest.mark.parametrize(
    ("policy", "header", "footer"),
    [
        (PlanPolicy(), "value $/h", "value is the $/h one more instance is expected to earn"),
        (PlanPolicy(cost_weight=0.0), "value $/h", "less nothing for its GPUs"),
    ],
)
def test_scales_names_the_unit_of_value(policy: PlanPolicy, header: str, footer: str) -> None:
    lines = render_text(scales_table(_PAIRS, policy, 42)).splitlines()
    assert f"  {header}  " in lines[1]
    assert lines[-2].startswith("value model: expected; ") and footer in lines[-2]
    assert lines[3].split()[-2:] == ["3.12", "✓"]  # the number itself is unchanged


def test_wide_shows_full_ids() -> None:
    assert str(UUID) in render_text(_scales(1), wide=True)
    assert str(UUID) not in render_text(_scales(1))


def test_missing_data_and_no_rows() -> None:
    table = Table(title="nodes", columns=[Column(key="a", title="A")], data_age_seconds=None)
    assert render_text(table).splitlines() == ["nodes", "(no rows)", "validator data unavailable"]
    quiet = Table(title="nodes", columns=[Column(key="a", title="A")], data_label=None)
    assert render_text(quiet).splitlines() == ["nodes", "(no rows)"]


def test_500_rows_and_4000_char_unicode_cells_render_whole() -> None:
    big = "日本😀" * 1333 + "x"  # 4,000 characters
    text = render_text(_scales(500, cell=big))
    assert text.count(big) == 500
    assert len(text.splitlines()) == 1 + 2 + 500 + 2


def test_message_plan_progress_and_composite() -> None:
    message = Message(level="error", text="deploy failed", details=["pod crashed", "exit 137"])
    plan = PlanView(
        title="deploy llama on gpu-1",
        steps=["claim 8 GPUs", "create job"],
        facts={"value": 1.5},
        warnings=["preempts 1 deployment"],
    )
    progress = Progress(current=2, failed=True, detail="409 from the cluster")
    text = render_text(Composite(items=[message, plan, progress]))
    assert text.split("\n\n") == [
        "ERROR: deploy failed\n  - pod crashed\n  - exit 137",
        "deploy llama on gpu-1\n1. claim 8 GPUs\n2. create job\n   value: 1.5\n"
        "WARNING: preempts 1 deployment",
        "deploy\n✓ claimed\n✓ launch config\n✗ service — 409 from the cluster\n· job\n"
        "· pod running\n· instance verified\n· active",
    ]


@pytest.mark.parametrize(
    ("level", "prefix"),
    [("info", "INFO: "), ("success", "OK: "), ("warning", "WARNING: "), ("error", "ERROR: ")],
)
def test_message_prefixes(level: str, prefix: str) -> None:
    assert render_text(Message(level=level, text="x")) == f"{prefix}x"
