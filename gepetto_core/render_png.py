"""PNG renderers: the fleet map and the report's charts. Pure: a view model in, PNG bytes out.

Used by the CLI (`fleet --png FILE`, `report --png FILE`) and by Slack (uploaded to a thread).
matplotlib's object API on the Agg canvas (`FigureCanvasAgg`; no pyplot, no global backend
state), so rendering needs no display and two figures never share state.

The fleet map is laid out in pixels by `fleet_layout` (a pure function the tests read back): one
row per server, one square per GPU slot, servers wrapped into columns of at most
`ROWS_PER_COLUMN`. At 100 servers x 8 GPUs that is 4 columns of 25 rows: each GPU an 18 px
square, server names and chute names in 8 px type, about 1,200 x 700 px, which Slack shows
without scaling on a laptop screen and which stays readable when zoomed out to half.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gepetto_core.models.history import (
    STATE_ORDER,
    FleetReport,
    FleetSnapshot,
    ReportBucket,
    SlotRun,
    SlotState,
)

DPI = 100
# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), idle light.
STATE_COLOURS: dict[SlotState, str] = {
    SlotState.RUNNING: "#009E73",
    SlotState.STARTING: "#56B4E9",
    SlotState.CRASHING: "#D55E00",
    SlotState.BACKED_OFF: "#E69F00",
    SlotState.IDLE: "#D9D9D9",
    SlotState.LOCKED: "#4D4D4D",
}
STATE_LABELS: dict[SlotState, str] = {
    SlotState.RUNNING: "running",
    SlotState.STARTING: "starting",
    SlotState.CRASHING: "crashing",
    SlotState.BACKED_OFF: "backed off",
    SlotState.IDLE: "idle (reason)",
    SlotState.LOCKED: "locked",
}
_DARK = frozenset({SlotState.RUNNING, SlotState.CRASHING, SlotState.LOCKED})

CELL = 18  # px, one GPU
GAP = 1  # px between the GPUs of one run (one deployment, or idle GPUs for one reason)
RUN_GAP = 5  # px between runs: two deployments of one state stay two blocks
ROW = CELL + 6  # px per server row
NAME_WIDTH = 96  # px for the server name
COLUMN_GAP = 24  # px between columns of servers
MARGIN = 12
HEADER = 34
LEGEND = 40
ROWS_PER_COLUMN = 25
FONT_PX = 8  # smallest type on the map
CHAR_PX = 5.2  # average width of one character at FONT_PX (DejaVu Sans)
NAME_CHARS = int(NAME_WIDTH / CHAR_PX) - 1


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2


@dataclass(frozen=True)
class RunBox:
    box: Box
    state: SlotState
    label: str | None  # chute or reason, when it fits inside the run


@dataclass(frozen=True)
class FleetLayout:
    width: int
    height: int
    columns: int
    # Per server (in the fleet's order): its name's position, and one box per GPU slot.
    names: list[tuple[str, int, int]]
    slots: list[list[tuple[Box, SlotState]]]
    runs: list[RunBox]
    legend: list[tuple[Box, SlotState]]


def _fits(text: str, width: int) -> bool:
    return len(text) * CHAR_PX + 4 <= width


def _row_width(runs: Sequence[SlotRun]) -> int:
    gpus = sum(r.count for r in runs)
    return gpus * CELL + (gpus - len(runs)) * GAP + max(0, len(runs) - 1) * RUN_GAP


def fleet_layout(fleet: FleetSnapshot) -> FleetLayout:
    n = max(1, len(fleet.servers))
    columns = math.ceil(n / ROWS_PER_COLUMN)
    rows = math.ceil(n / columns)
    row_width = max((_row_width(s.runs) for s in fleet.servers), default=CELL)
    column_width = NAME_WIDTH + row_width + COLUMN_GAP
    legend_width = len(STATE_ORDER) * 150
    width = max(2 * MARGIN + columns * column_width - COLUMN_GAP, legend_width, 480)
    height = MARGIN + HEADER + rows * ROW + LEGEND + MARGIN
    names: list[tuple[str, int, int]] = []
    slots: list[list[tuple[Box, SlotState]]] = []
    runs: list[RunBox] = []
    for i, server in enumerate(fleet.servers):
        col, row = divmod(i, rows)
        x0 = MARGIN + col * column_width
        y0 = MARGIN + HEADER + row * ROW
        name = (
            server.name if len(server.name) <= NAME_CHARS else server.name[: NAME_CHARS - 1] + "…"
        )
        names.append((name, x0, y0 + CELL // 2))
        x = x0 + NAME_WIDTH
        boxes: list[tuple[Box, SlotState]] = []
        for run in server.runs:
            start = x
            for _ in range(run.count):
                boxes.append((Box(x, y0, CELL, CELL), run.state))
                x += CELL + GAP
            run_box = Box(start, y0, x - GAP - start, CELL)
            x += RUN_GAP - GAP
            text = run.chute if run.chute else run.reason
            # Text only across two GPUs or more: a label on one square hides its colour.
            fits = text is not None and run.count >= 2 and _fits(text, run_box.w)
            label = text if fits else None
            runs.append(RunBox(run_box, run.state, label))
        slots.append(boxes)
    legend: list[tuple[Box, SlotState]] = []
    y = height - MARGIN - LEGEND + 14
    for k, state in enumerate(STATE_ORDER):
        legend.append((Box(MARGIN + k * 150, y, CELL, CELL), state))
    return FleetLayout(width, height, columns, names, slots, runs, legend)


def _figure(width: int, height: int) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    return fig, ax


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No timestamp or software tag: the same view model gives the same bytes.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def render_fleet_png(fleet: FleetSnapshot, *, title: str = "gepetto fleet") -> bytes:
    layout = fleet_layout(fleet)
    fig, ax = _figure(layout.width, layout.height)
    rects: list[Rectangle] = []
    colours: list[str] = []
    for boxes in layout.slots:
        for box, state in boxes:
            rects.append(Rectangle((box.x, box.y), box.w, box.h))
            colours.append(STATE_COLOURS[state])
    for box, state in layout.legend:
        rects.append(Rectangle((box.x, box.y), box.w, box.h))
        colours.append(STATE_COLOURS[state])
    ax.add_collection(
        PatchCollection(rects, facecolors=colours, edgecolors="none", antialiased=False)
    )
    font: dict[str, Any] = {"fontsize": FONT_PX * 72 / DPI, "family": "DejaVu Sans"}
    for name, x, y in layout.names:
        ax.text(x, y, name, va="center", ha="left", **font)
    for run in layout.runs:
        if run.label is None:
            continue
        colour = "white" if run.state in _DARK else "#222222"
        cx, cy = run.box.centre
        ax.text(cx, cy, run.label, va="center", ha="center", color=colour, **font)
    when = fleet.taken_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"{title} · {len(fleet.servers)} servers · {fleet.gpus} GPUs · "
        f"autoscaler {fleet.mode} · {when}"
    )
    ax.text(MARGIN, MARGIN + 10, head, va="center", ha="left", fontsize=10, weight="bold")
    for box, state in layout.legend:
        label = f"{STATE_LABELS[state]} {fleet.count(state)}"
        ax.text(box.x + CELL + 5, box.y + CELL / 2, label, va="center", ha="left", **font)
    return _png(fig)


# --- the report's charts -----------------------------------------------------------------


REPORT_SIZE = (1200, 820)  # px


def render_report_png(report: FleetReport, *, title: str = "gepetto report") -> bytes:
    width, height = REPORT_SIZE
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        2, 2, left=0.06, right=0.98, top=0.9, bottom=0.08, hspace=0.4, wspace=0.3
    )
    when = f"{report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC"
    fig.suptitle(f"{title} · last {report.window} · {when}", fontsize=12, weight="bold")
    # x in hours since the window's start (ticks labelled with the clock below).
    times = [(b.start - report.start).total_seconds() / 3600 for b in report.buckets]
    occ = fig.add_subplot(grid[0, 0])
    _occupancy_chart(occ, report, times)
    money = fig.add_subplot(grid[0, 1])
    _money_chart(money, report, times)
    dep = fig.add_subplot(grid[1, 0])
    _deploys_chart(dep, report, times)
    _idle_chart(fig.add_subplot(grid[1, 1]), report)
    hours, ticks, labels = _time_axis(report)
    for ax in (occ, money, dep):
        ax.set_xlim(0, hours)
        ax.set_xticks(ticks, labels, fontsize=7)
        ax.grid(alpha=0.3)
    return _png(fig)


def _per_bucket(report: FleetReport, of: Callable[[ReportBucket], float]) -> list[float]:
    # A bucket without history is a gap in the line, not a zero.
    return [of(b) if b.snapshots else math.nan for b in report.buckets]


def _occupancy_chart(ax: Axes, report: FleetReport, times: list[float]) -> None:
    series: Sequence[tuple[str, SlotState, list[float]]] = (
        ("running", SlotState.RUNNING, _per_bucket(report, lambda b: b.running)),
        ("starting", SlotState.STARTING, _per_bucket(report, lambda b: b.starting)),
        ("crashing", SlotState.CRASHING, _per_bucket(report, lambda b: b.crashing)),
        ("idle", SlotState.IDLE, _per_bucket(report, lambda b: b.idle)),
    )
    ax.stackplot(
        times,
        *[v for _, _, v in series],
        labels=[name for name, _, _ in series],
        colors=[STATE_COLOURS[state] for _, state, _ in series],
        step="post",
    )
    ax.set_title(f"GPU occupancy ({report.occupancy:.0%} busy)", fontsize=10)
    ax.set_ylabel("GPUs")
    ax.legend(loc="lower left", fontsize=7, ncols=4)


def _money_chart(ax: Axes, report: FleetReport, times: list[float]) -> None:
    for label, of, state in (
        ("estimated earnings", lambda b: b.earning_per_hour, SlotState.RUNNING),
        ("GPU cost", lambda b: b.cost_per_hour, SlotState.CRASHING),
    ):
        ax.step(
            times, _per_bucket(report, of), where="post", color=STATE_COLOURS[state], label=label
        )
    ax.set_title(
        f"$ per hour (earned ${report.earnings:,.0f}, cost ${report.cost:,.0f})", fontsize=10
    )
    ax.set_ylabel("$ / h")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_ylim(bottom=0)


def _deploys_chart(ax: Axes, report: FleetReport, times: list[float]) -> None:
    bucket_hours = times[1] - times[0] if len(times) > 1 else 1.0
    ok = [b.deploys - b.failed_deploys for b in report.buckets]
    bad = [b.failed_deploys for b in report.buckets]
    common: dict[str, Any] = {"width": bucket_hours * 0.8, "align": "edge"}
    ax.bar(times, ok, color=STATE_COLOURS[SlotState.STARTING], label="deploys", **common)
    ax.bar(times, bad, bottom=ok, color=STATE_COLOURS[SlotState.CRASHING], label="failed", **common)
    ax.set_title(f"deploys ({report.deploys}, {report.failed_deploys} failed)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)


def _idle_chart(ax: Axes, report: FleetReport) -> None:
    reasons = list(report.idle_gpu_hours.items())[:8][::-1]
    ax.barh(
        [why for why, _ in reasons] or ["none"],
        [hours for _, hours in reasons] or [0.0],
        color=STATE_COLOURS[SlotState.BACKED_OFF],
    )
    ax.set_title("idle GPU-hours by reason", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)


def _time_axis(report: FleetReport) -> tuple[float, list[float], list[str]]:
    """The window's length in hours, and clock-time ticks: every 3 h for a day, daily for a
    week (first tick on the first whole step after the start)."""
    hours = (report.end - report.start).total_seconds() / 3600
    step = timedelta(hours=3) if hours <= 48 else timedelta(days=1)
    fmt = "%H:%M" if hours <= 48 else "%a %d"
    first = report.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        first = first.replace(hour=0)
    while first < report.start:
        first += step
    ticks: list[float] = []
    labels: list[str] = []
    at = first
    while at <= report.end:
        ticks.append((at - report.start).total_seconds() / 3600)
        labels.append(at.strftime(fmt))
        at += step
    return hours, ticks, labels


def render_result_png(result: object) -> bytes | None:
    """The image of a result that has one (`fleet`, `report`), else None."""
    from gepetto_core.views import FleetMap, ReportView  # views import the models only

    if isinstance(result, FleetMap):
        return render_fleet_png(result.fleet)
    if isinstance(result, ReportView):
        return render_report_png(result.report)
    return None
