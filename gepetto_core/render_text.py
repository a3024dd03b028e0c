"""Terminal rendering of view models (tabulate tables, prefixed messages, numbered plans).

``format_cell`` is also used by the Slack renderer, so a cell reads the same everywhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from tabulate import tabulate

from gepetto_core.render_fleet_text import render_fleet_map_text, render_report_text
from gepetto_core.views import (
    NUMERIC_KINDS,
    Cell,
    ColumnKind,
    Composite,
    FleetMap,
    Message,
    PlanView,
    Progress,
    ReportView,
    Result,
    StepState,
    Table,
)

SHORT_ID_LENGTH = 8

LEVEL_PREFIX = {"info": "INFO", "success": "OK", "warning": "WARNING", "error": "ERROR"}
STEP_MARK_TEXT: dict[StepState, str] = {
    "done": "✓",
    "running": "…",
    "failed": "✗",
    "pending": "·",
}


def format_duration(value: timedelta | float) -> str:
    """Compact duration: ``45s``, ``12m05s``, ``3h12m``, ``2d03h``. Negative values get a minus."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        return str(seconds)
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s"
    return f"{sign}{secs}s"


def format_age(seconds: float | None, label: str) -> str:
    """Footer line: ``validator data 42 s old`` or ``validator data unavailable``."""
    if seconds is None:
        return f"{label} unavailable"
    if seconds < 120:
        return f"{label} {round(seconds)} s old"
    if seconds < 7_200:
        return f"{label} {round(seconds / 60)} min old"
    return f"{label} {seconds / 3_600:.1f} h old"


def _as_datetime(value: Cell) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def format_cell(value: Cell, kind: ColumnKind, *, wide: bool = False) -> str:
    """One cell as display text. Values of an unexpected type fall back to ``str``."""
    if value is None:
        return ""
    if kind == ColumnKind.BOOL:
        return "✓" if value else "—"
    if isinstance(value, bool):
        return "✓" if value else "—"
    number = value if isinstance(value, int | float) else None
    if kind == ColumnKind.MONEY and number is not None:
        return f"${number:,.2f}/h"
    if kind == ColumnKind.PERCENT and number is not None:
        return f"{number * 100:.0f}%"
    if kind == ColumnKind.FLOAT and number is not None:
        return f"{number:,.2f}"
    if kind == ColumnKind.INT and number is not None:
        return f"{int(number):,}"
    if kind == ColumnKind.DURATION and (number is not None or isinstance(value, timedelta)):
        return format_duration(value)  # type: ignore[arg-type]
    if kind == ColumnKind.DATETIME:
        moment = _as_datetime(value)
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    if kind == ColumnKind.ID:
        text = str(value)
        return text if wide else text[:SHORT_ID_LENGTH]
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value)


def table_cells(table: Table, *, wide: bool = False) -> list[list[str]]:
    """Every row of ``table`` as display strings, in column order."""
    return [
        [format_cell(row.get(col.key), col.kind, wide=wide) for col in table.columns]
        for row in table.rows
    ]


def render_table(table: Table, *, wide: bool = False) -> str:
    lines = [table.title]
    if table.rows:
        align = ["right" if c.kind in NUMERIC_KINDS else "left" for c in table.columns]
        lines.append(
            tabulate(
                table_cells(table, wide=wide),
                headers=[c.title for c in table.columns],
                tablefmt="simple",
                colalign=align,
                disable_numparse=True,
            )
        )
    else:
        lines.append("(no rows)")
    if table.note:
        lines.append(table.note)
    if table.data_label is not None:
        lines.append(format_age(table.data_age_seconds, table.data_label))
    return "\n".join(lines)


def render_message(message: Message) -> str:
    lines = [f"{LEVEL_PREFIX[message.level]}: {message.text}"]
    lines.extend(f"  - {detail}" for detail in message.details)
    return "\n".join(lines)


def render_plan(plan: PlanView) -> str:
    lines = [plan.title]
    lines.extend(f"{i}. {step}" for i, step in enumerate(plan.steps, start=1))
    lines.extend(f"   {key}: {'' if value is None else value}" for key, value in plan.facts.items())
    lines.extend(f"WARNING: {warning}" for warning in plan.warnings)
    return "\n".join(lines)


def render_progress(progress: Progress) -> str:
    lines = [progress.title]
    for name, state in progress.states():
        line = f"{STEP_MARK_TEXT[state]} {name}"
        if progress.detail and state in ("running", "failed"):
            line += f" — {progress.detail}"
        lines.append(line)
    if progress.finished and progress.detail:
        lines.append(progress.detail)
    return "\n".join(lines)


def render_text(result: Result, *, wide: bool = False) -> str:
    """The terminal form of any result; ``wide`` shows full ids."""
    if isinstance(result, Table):
        return render_table(result, wide=wide)
    if isinstance(result, Message):
        return render_message(result)
    if isinstance(result, PlanView):
        return render_plan(result)
    if isinstance(result, Progress):
        return render_progress(result)
    if isinstance(result, Composite):
        return "\n\n".join(render_text(item, wide=wide) for item in result.items)
    if isinstance(result, FleetMap):  # #26
        return render_fleet_map_text(result)
    if isinstance(result, ReportView):  # #26
        return render_report_text(result)
    raise TypeError(f"not a view model: {type(result).__name__}")
