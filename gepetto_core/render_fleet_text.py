"""Text forms of the fleet map and the report: the terminal grid, and the counts sentence
that goes beside the PNG in Slack (for screen readers and notifications). Pure.

The grid is one cell per server, `name [slots]`, one character per GPU, as many cells per
line as fit in `width` columns: 100 servers x 8 GPUs is 4 cells a line, 25 lines.
"""

from __future__ import annotations

from gepetto_core.models.history import BUSY_STATES, STATE_ORDER, FleetSnapshot, SlotState
from gepetto_core.services.fleet_report import summary_lines
from gepetto_core.views import FleetMap, ReportView

# One ASCII character per state: readable in any terminal, font and log file.
STATE_CHARS: dict[SlotState, str] = {
    SlotState.RUNNING: "#",
    SlotState.STARTING: "+",
    SlotState.CRASHING: "!",
    SlotState.BACKED_OFF: "~",
    SlotState.IDLE: ".",
    SlotState.LOCKED: "x",
}
STATE_WORDS: dict[SlotState, str] = {
    SlotState.RUNNING: "running",
    SlotState.STARTING: "starting",
    SlotState.CRASHING: "crashing",
    SlotState.BACKED_OFF: "backed off",
    SlotState.IDLE: "idle",
    SlotState.LOCKED: "locked",
}
NAME_WIDTH = 12


def counts_text(fleet: FleetSnapshot) -> str:
    """`800 GPUs on 100 servers: 519 running, 80 starting, ... Idle: 60 no candidate placed,
    ...` — the whole map in words."""
    parts = [
        f"{fleet.count(state)} {STATE_WORDS[state]}" for state in STATE_ORDER if fleet.count(state)
    ]
    text = f"{fleet.gpus} GPUs on {len(fleet.servers)} servers: {', '.join(parts) or 'none'}."
    idle = {k: v for k, v in fleet.idle_by_reason().items() if v}
    if idle:
        reasons = sorted(idle.items(), key=lambda kv: (-kv[1], kv[0]))
        text += " Not busy, by reason: " + ", ".join(f"{n} {why}" for why, n in reasons) + "."
    busy = sum(fleet.count(s) for s in BUSY_STATES)
    if fleet.gpus:
        text += f" Occupancy {busy / fleet.gpus:.0%}."
    return text


def render_fleet_grid(fleet: FleetSnapshot, *, width: int = 100) -> str:
    cells = []
    for server in fleet.servers:
        name = server.name[:NAME_WIDTH].ljust(NAME_WIDTH)
        slots = "".join(STATE_CHARS[run.state] * run.count for run in server.runs)
        cells.append(f"{name} [{slots}]")
    cell_width = max((len(c) for c in cells), default=1) + 2
    per_line = max(1, width // cell_width)
    lines = [
        "".join(c.ljust(cell_width) for c in cells[i : i + per_line]).rstrip()
        for i in range(0, len(cells), per_line)
    ]
    legend = "  ".join(f"{STATE_CHARS[s]} {STATE_WORDS[s]}" for s in STATE_ORDER)
    when = f"{fleet.taken_at:%Y-%m-%d %H:%M} UTC"
    head = f"fleet · autoscaler {fleet.mode} · {when}"
    return "\n".join([head, *lines, "", legend, counts_text(fleet)])


def render_fleet_map_text(view: FleetMap) -> str:
    return render_fleet_grid(view.fleet)


def render_report_text(view: ReportView) -> str:
    lines = view.summary or summary_lines(view.report)
    return "\n".join([view.title, *lines])
