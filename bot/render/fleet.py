"""Blocks for the fleet map and the report (#26): the words beside the PNG.

The image itself goes up with the files API into the message's thread (``bot.uploads``);
these blocks carry the same information as text, so a screen reader or a notification has the
whole picture: the counts by state and the idle reasons, or the report's summary.
"""

from __future__ import annotations

from bot.render.kit import Block, context, escape_mrkdwn, plain_text, section
from gepetto_core.render_fleet_text import counts_text
from gepetto_core.views import FleetMap, ReportView

MAX_HEADER = 150


def build_fleet_text_blocks(view: FleetMap | ReportView) -> list[Block]:
    header: Block = {"type": "header", "text": plain_text(view.title[:MAX_HEADER])}
    if isinstance(view, FleetMap):
        fleet = view.fleet
        return [
            header,
            section(escape_mrkdwn(counts_text(fleet))),
            context(
                f"autoscaler {escape_mrkdwn(fleet.mode)} · "
                f"{fleet.taken_at:%Y-%m-%d %H:%M} UTC · the map is in the thread"
            ),
        ]
    lines = "\n".join(f"• {escape_mrkdwn(line)}" for line in view.summary)
    return [
        header,
        section(lines or "No fleet history yet."),
        context(f"{view.report.start:%Y-%m-%d %H:%M} – {view.report.end:%Y-%m-%d %H:%M} UTC"),
    ]


def fleet_fallback_text(view: FleetMap | ReportView) -> str:
    if isinstance(view, FleetMap):
        return f"{view.title}: {counts_text(view.fleet)}"
    return f"{view.title}: {' '.join(view.summary)}"
