"""Block Kit builders: one pure ``build_*_blocks`` function per view model.

Tables use Slack's native ``table`` block (slack_sdk 3.48 has ``TableBlock``), with a ``#``
column when rows carry buttons; the buttons of row ``n`` sit in their own actions block, labelled
``Deploy #n``, so that each button keeps its plain ``action_id``. Long tables are paged with
Prev/Next buttons whose value holds the page number. ``render_slack`` builds and fits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Action ids live in bot.action_ids (one module for all of them); re-exported here.
from bot.action_ids import PAGE_NEXT_ACTION_ID as PAGE_NEXT_ACTION_ID
from bot.action_ids import PAGE_PREV_ACTION_ID as PAGE_PREV_ACTION_ID
from bot.action_ids import SHARE_ACTION_ID as SHARE_ACTION_ID
from bot.render.fit import EMPTY_CELL, MAX_SECTION_FIELDS, fit_message
from bot.render.fleet import build_fleet_text_blocks, fleet_fallback_text
from bot.render.kit import Block, context, escape_mrkdwn, mrkdwn, plain_text, section
from gepetto_core.render_text import format_age, format_cell
from gepetto_core.views import (
    NUMERIC_KINDS,
    Composite,
    Confirm,
    FleetMap,
    Message,
    PlanView,
    Progress,
    ReportView,
    Result,
    RowAction,
    StepState,
    Table,
)

DEFAULT_PAGE_SIZE = 20
ACTION_ROWS_PER_PAGE = 10  # each row with buttons costs one block of the 50
CELL_DISPLAY_MAX = 200  # longer cells are cut for reading, well before Slack's own limit
MAX_PAGE_CONTEXT = 1_800  # page context travels in a button value (2,000 max)

LEVEL_EMOJI = {"info": "ℹ️", "success": "✅", "warning": "⚠️", "error": "❌"}
STEP_EMOJI: dict[StepState, str] = {"done": "✅", "running": "⏳", "failed": "❌", "pending": "▫️"}


@dataclass(frozen=True)
class SlackMessage:
    """A postable message: ``client.chat_postMessage(channel=c, **msg.as_kwargs())``."""

    blocks: list[Block]
    text: str

    def as_kwargs(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "text": self.text}


def _confirm(confirm: Confirm) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": plain_text(confirm.title),
        "text": mrkdwn(confirm.text),
        "confirm": plain_text(confirm.confirm),
        "deny": plain_text(confirm.deny),
    }
    if confirm.style:
        out["style"] = confirm.style
    return out


def build_button(action: RowAction, *, label: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": plain_text(label or action.label),
        "action_id": action.action_id,
        "value": action.value,
    }
    if action.style:
        button["style"] = action.style
    if action.confirm:
        button["confirm"] = _confirm(action.confirm)
    return button


# -- pagination -----------------------------------------------------------------------------


def page_value(page_context: str, page: int) -> str:
    return json.dumps({"ctx": page_context, "page": page}, separators=(",", ":"))


def parse_page_value(value: str) -> tuple[str, int]:
    """(page context, page number) from a Prev/Next button value."""
    data = json.loads(value)
    return str(data["ctx"]), int(data["page"])


def build_pagination_block(page_context: str, page: int, pages: int) -> Block | None:
    if len(page_context) > MAX_PAGE_CONTEXT:
        raise ValueError(f"page context over {MAX_PAGE_CONTEXT} chars; pass an opaque id")
    buttons = []
    if page > 0:
        buttons.append(
            {
                "type": "button",
                "text": plain_text("‹ Prev"),
                "action_id": PAGE_PREV_ACTION_ID,
                "value": page_value(page_context, page - 1),
            }
        )
    if page + 1 < pages:
        buttons.append(
            {
                "type": "button",
                "text": plain_text("Next ›"),
                "action_id": PAGE_NEXT_ACTION_ID,
                "value": page_value(page_context, page + 1),
            }
        )
    return {"type": "actions", "elements": buttons} if buttons else None


# -- builders -------------------------------------------------------------------------------


def _cell_text(text: str) -> str:
    if not text:
        return EMPTY_CELL
    if len(text) > CELL_DISPLAY_MAX:
        return text[: CELL_DISPLAY_MAX - 1] + "…"
    return text


def build_table_blocks(
    table: Table,
    *,
    page: int = 0,
    page_size: int | None = None,
    page_context: str = "",
    wide: bool = False,
) -> list[Block]:
    """One page of ``table``: header, native table, row buttons, footer, Prev/Next buttons."""
    has_actions = table.actions_per_row is not None and any(table.actions_per_row)
    size = page_size or (ACTION_ROWS_PER_PAGE if has_actions else DEFAULT_PAGE_SIZE)
    total = len(table.rows)
    pages = max(1, -(-total // size))
    page = min(max(page, 0), pages - 1)
    first, last = page * size, min(total, (page + 1) * size)

    blocks: list[Block] = [{"type": "header", "text": plain_text(table.title or "table")}]
    if total == 0:
        blocks.append(section("_no rows_"))
    else:
        titles = [c.title or c.key for c in table.columns]
        settings: list[dict[str, Any]] = [
            {"align": "right" if c.kind in NUMERIC_KINDS else "left"} for c in table.columns
        ]
        if has_actions:
            titles, settings = ["#", *titles], [{"align": "right"}, *settings]
        rows = [[{"type": "raw_text", "text": _cell_text(t)} for t in titles]]
        for index in range(first, last):
            cells = [
                format_cell(table.rows[index].get(c.key), c.kind, wide=wide) for c in table.columns
            ]
            if has_actions:
                cells.insert(0, str(index + 1))
            rows.append([{"type": "raw_text", "text": _cell_text(t)} for t in cells])
        blocks.append({"type": "table", "rows": rows, "column_settings": settings})
        for index in range(first, last):
            actions = table.row_actions(index)
            if actions:
                blocks.append(
                    {
                        "type": "actions",
                        "elements": [
                            build_button(a, label=f"{a.label} #{index + 1}") for a in actions
                        ],
                    }
                )
    footer = []
    if table.note:
        footer.append(table.note)
    if table.data_label is not None:
        footer.append(format_age(table.data_age_seconds, table.data_label))
    if total > size:
        footer.append(f"rows {first + 1}–{last} of {total} · page {page + 1}/{pages}")
    if footer:
        blocks.append(context(" · ".join(footer)))
    nav = build_pagination_block(page_context, page, pages) if total > size else None
    if nav is not None:
        blocks.append(nav)
    return blocks


def build_message_blocks(message: Message) -> list[Block]:
    blocks = [section(f"{LEVEL_EMOJI[message.level]} {message.text}")]
    if message.details:
        blocks.append(section("\n".join(f"• {d}" for d in message.details)))
    return blocks


def build_plan_blocks(plan: PlanView) -> list[Block]:
    blocks: list[Block] = [{"type": "header", "text": plain_text(plan.title or "plan")}]
    if plan.steps:
        blocks.append(section("\n".join(f"{i}. {s}" for i, s in enumerate(plan.steps, 1))))
    if plan.facts:
        facts = [f"*{escape_mrkdwn(k)}*\n{'' if v is None else v}" for k, v in plan.facts.items()]
        if len(facts) <= MAX_SECTION_FIELDS:
            blocks.append({"type": "section", "fields": [mrkdwn(f) for f in facts]})
        else:
            blocks.append(section("\n".join(f.replace("\n", ": ", 1) for f in facts)))
    if plan.warnings:
        blocks.append(section("\n".join(f"⚠️ {w}" for w in plan.warnings)))
    if plan.actions:
        blocks.append({"type": "actions", "elements": [build_button(a) for a in plan.actions]})
    return blocks


def build_progress_blocks(progress: Progress) -> list[Block]:
    """Progress as one line per step; post it once, then ``chat.update`` it with new states."""
    lines = [f"*{progress.title}*"]
    for name, state in progress.states():
        line = f"{STEP_EMOJI[state]} {name}"
        if progress.detail and state in ("running", "failed"):
            line += f" — {progress.detail}"
        lines.append(line)
    if progress.finished and progress.detail:
        lines.append(progress.detail)
    return [section("\n".join(lines))]


def build_share_block(share_value: str) -> Block:
    """The "Share in channel" button under an ephemeral read."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": plain_text("Share in channel"),
                "action_id": SHARE_ACTION_ID,
                "value": share_value,
            }
        ],
    }


def build_result_blocks(
    result: Result,
    *,
    page: int = 0,
    page_size: int | None = None,
    page_context: str = "",
    share_value: str | None = None,
    wide: bool = False,
) -> list[Block]:
    """Blocks for any result (not yet fitted); ``share_value`` makes the ephemeral variant."""
    if isinstance(result, Table):
        blocks = build_table_blocks(
            result, page=page, page_size=page_size, page_context=page_context, wide=wide
        )
    elif isinstance(result, Message):
        blocks = build_message_blocks(result)
    elif isinstance(result, PlanView):
        blocks = build_plan_blocks(result)
    elif isinstance(result, Progress):
        blocks = build_progress_blocks(result)
    elif isinstance(result, FleetMap | ReportView):  # #26
        blocks = build_fleet_text_blocks(result)
    elif isinstance(result, Composite):
        blocks = []
        for i, item in enumerate(result.items):
            if i:
                blocks.append({"type": "divider"})
            blocks.extend(
                build_result_blocks(
                    item, page=page, page_size=page_size, page_context=page_context, wide=wide
                )
            )
    else:
        raise TypeError(f"not a view model: {type(result).__name__}")
    if share_value is not None:
        blocks.append(build_share_block(share_value))
    return blocks


def fallback_text(result: Result) -> str:
    """The notification / screen-reader text that goes with the blocks."""
    if isinstance(result, Table):
        return f"{result.title} ({len(result.rows)} rows)"
    if isinstance(result, Message):
        return f"{LEVEL_EMOJI[result.level]} {result.text}"
    if isinstance(result, PlanView):
        return f"plan: {result.title}"
    if isinstance(result, Progress):
        states = result.states()
        done = sum(1 for _, s in states if s == "done")
        status = "failed" if result.failed else "done" if result.finished else "running"
        return f"{result.title}: {status} ({done}/{len(states)} steps)"
    if isinstance(result, FleetMap | ReportView):  # #26
        return fleet_fallback_text(result)
    return " · ".join(fallback_text(item) for item in result.items) or "gepetto"


def render_slack(result: Result, **options: Any) -> SlackMessage:
    """Build and fit: the message to post for ``result`` (options as ``build_result_blocks``)."""
    blocks, text = fit_message(build_result_blocks(result, **options), fallback_text(result))
    return SlackMessage(blocks, text)
