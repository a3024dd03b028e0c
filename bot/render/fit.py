"""``fit_message``: the one place that makes any block list postable on Slack.

Every Slack limit in `docs/protocol.md#slack-limits` is enforced here (block count, text
lengths per block type, buttons, confirm dialogs, table rows and columns, one table per
message, total block text, message text), by cutting with a visible "… n more" notice rather
than letting Slack refuse the message. Lengths are counted in UTF-16 units, the safe reading of
Slack's "characters".
"""

from __future__ import annotations

import copy
from typing import Any

from tabulate import tabulate

from bot.render.kit import Block, context, escape_mrkdwn, mrkdwn, plain_text, section

# Slack limits (`docs/protocol.md#slack-limits`). Conservative where Slack's docs are vague:
# one table per message, 2,000 chars per table cell, 12,000 chars of block text in all.
MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
MAX_TOTAL_TEXT = 12_000  # msg_blocks_too_long observed at ~12-13 k
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2_000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_URL = 3_000
MAX_ID = 255
MAX_CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
MAX_TABLE_ROWS = 100
MAX_TABLE_CELLS = 20
MAX_TABLE_CELL_TEXT = 2_000
MAX_MARKDOWN_TEXT = 12_000
EMPTY_CELL = "–"  # a table cell may not be empty
KNOWN_BLOCK_TYPES = frozenset(
    {
        "header",
        "section",
        "context",
        "actions",
        "divider",
        "table",
        "markdown",
        "rich_text",
        "image",
    }
)


def slack_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units (never half a pair)."""
    raw = text.encode("utf-16-le", "surrogatepass")[: 2 * max(limit, 0)]
    return raw.decode("utf-16-le", "ignore")


def truncate(text: str, limit: int) -> str:
    """``text`` within ``limit``, ending in a visible "… n more chars" when cut."""
    total = slack_len(text)
    if total <= limit:
        return text
    if text.startswith("```") and text.rstrip().endswith("```") and limit > 40:
        return _truncate_code(text, limit)
    guess = total - limit + 20
    for _ in range(4):  # the notice's length depends on n: settle n in a few rounds
        notice = f"… {guess} more chars"
        head = _cut(text, limit - slack_len(notice))
        hidden = total - slack_len(head)
        if hidden == guess and slack_len(head) + slack_len(notice) <= limit:
            return head + notice
        guess = hidden
    return _cut(text, limit)


def _truncate_code(text: str, limit: int) -> str:
    # Keep whole lines of a code block, close the fence, and put the notice outside it.
    lines = text.strip()[3:-3].split("\n")
    used = 6  # the two fences
    kept = 0
    for line in lines:
        room = limit - used - slack_len(line) - (1 if kept else 0)
        if room < len(f"\n… {len(lines)} more lines"):
            break
        used += slack_len(line) + (1 if kept else 0)
        kept += 1
    return "```" + "\n".join(lines[:kept]) + "```" + f"\n… {len(lines) - kept} more lines"


def _fit_text_object(obj: Any, limit: int, *, plain_only: bool = False) -> dict[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return plain_text("–")
    kind = obj.get("type")
    if plain_only or kind not in ("plain_text", "mrkdwn"):
        kind = "plain_text" if plain_only or kind != "mrkdwn" else kind
    return {**obj, "type": kind, "text": truncate(obj["text"] or "–", limit)}


def _fit_element(element: Any) -> Any:
    if not isinstance(element, dict) or element.get("type") != "button":
        return element
    out = dict(element)
    out["text"] = _fit_text_object(out.get("text"), MAX_BUTTON_TEXT, plain_only=True)
    if isinstance(out.get("value"), str):
        out["value"] = _cut(out["value"], MAX_BUTTON_VALUE)
    if isinstance(out.get("url"), str) and slack_len(out["url"]) > MAX_URL:
        del out["url"]  # a cut URL is a wrong URL
    if isinstance(out.get("action_id"), str):
        out["action_id"] = _cut(out["action_id"], MAX_ID)
    if out.get("style") not in ("primary", "danger"):
        out.pop("style", None)
    if isinstance(out.get("confirm"), dict):
        confirm = dict(out["confirm"])
        for key, limit in MAX_CONFIRM.items():
            confirm[key] = _fit_text_object(confirm.get(key), limit, plain_only=key != "text")
        if confirm.get("style") not in ("primary", "danger"):
            confirm.pop("style", None)
        out["confirm"] = confirm
    return out


def _fit_table(block: Block) -> Block:
    rows = [list(r) for r in block.get("rows") or [[{"type": "raw_text", "text": "–"}]]]
    width = min(max(len(r) for r in rows), MAX_TABLE_CELLS)
    extra_cols = max(len(r) for r in rows) - width
    fitted_rows = []
    for r, row in enumerate(rows):
        cells = [*row[: width - 1], _more_cols_cell(r, extra_cols)] if extra_cols else row
        cells = cells + [{"type": "raw_text", "text": EMPTY_CELL}] * (width - len(cells))
        fitted_rows.append([_fit_cell(c) for c in cells])
    if len(fitted_rows) > MAX_TABLE_ROWS:
        fitted_rows = _with_more_rows(fitted_rows, MAX_TABLE_ROWS)
    out = {**block, "rows": fitted_rows}
    if isinstance(out.get("column_settings"), list):
        out["column_settings"] = out["column_settings"][:width]
    return out


def _more_cols_cell(row: int, extra: int) -> dict[str, Any]:
    return {"type": "raw_text", "text": f"… {extra + 1} more cols" if row == 0 else "…"}


def _fit_cell(cell: Any) -> Any:
    if isinstance(cell, dict) and cell.get("type") == "raw_text":
        return {**cell, "text": truncate(str(cell.get("text") or EMPTY_CELL), MAX_TABLE_CELL_TEXT)}
    if isinstance(cell, dict) and cell.get("type") in ("rich_text", "raw_number"):
        return cell
    return {"type": "raw_text", "text": truncate(str(cell) or EMPTY_CELL, MAX_TABLE_CELL_TEXT)}


def _hidden_rows(row: list[Any]) -> int:
    """How many rows an earlier "… n more rows" notice row stands for (0 if not a notice)."""
    first = row[0] if row else None
    text = first.get("text") if isinstance(first, dict) else None
    if isinstance(text, str) and text.startswith("… ") and text.endswith(" more rows"):
        count = text[2 : -len(" more rows")]
        return int(count) if count.isdigit() else 0
    return 0


def _with_more_rows(rows: list[list[Any]], keep: int) -> list[list[Any]]:
    """The header plus the first rows, the last of ``keep`` rows saying how many were cut."""
    already = _hidden_rows(rows[-1]) if len(rows) > 1 else 0
    data = rows[:-1] if already else rows
    hidden = len(data) - (keep - 1) + already
    notice = [{"type": "raw_text", "text": f"… {hidden} more rows"}]
    notice += [{"type": "raw_text", "text": "…"}] * (len(rows[0]) - 1)
    return [*data[: keep - 1], notice]


def _fit_block(block: Any) -> list[Block]:
    """One block within its own limits (an over-full actions block becomes several)."""
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    out = dict(block)
    if kind == "header":
        out["text"] = _fit_text_object(out.get("text"), MAX_HEADER_TEXT, plain_only=True)
    elif kind == "section":
        if "text" in out or "fields" not in out:
            out["text"] = _fit_text_object(out.get("text"), MAX_SECTION_TEXT)
        if isinstance(out.get("fields"), list):
            fields = [_fit_text_object(f, MAX_FIELD_TEXT) for f in out["fields"]]
            fields = fields or [plain_text("–")]
            if len(fields) > MAX_SECTION_FIELDS:
                more = len(fields) - MAX_SECTION_FIELDS + 1
                fields = [*fields[: MAX_SECTION_FIELDS - 1], mrkdwn(f"… {more} more")]
            out["fields"] = fields
        if "accessory" in out:
            out["accessory"] = _fit_element(out["accessory"])
    elif kind == "context":
        elements = [
            e
            if isinstance(e, dict) and e.get("type") == "image"
            else _fit_text_object(e, MAX_CONTEXT_TEXT)
            for e in out.get("elements") or [plain_text("–")]
        ]
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            more = len(elements) - MAX_CONTEXT_ELEMENTS + 1
            elements = [*elements[: MAX_CONTEXT_ELEMENTS - 1], mrkdwn(f"… {more} more")]
        out["elements"] = elements
    elif kind == "actions":
        elements = [_fit_element(e) for e in out.get("elements") or []]
        chunks = [
            elements[i : i + MAX_ACTIONS_ELEMENTS]
            for i in range(0, len(elements), MAX_ACTIONS_ELEMENTS)
        ]
        return [{**out, "elements": _unique_action_ids(c)} for c in chunks]
    elif kind == "table":
        out = _fit_table(out)
    elif kind == "markdown" and isinstance(out.get("text"), str):
        out["text"] = truncate(out["text"], MAX_MARKDOWN_TEXT)
    elif kind not in KNOWN_BLOCK_TYPES:
        return []  # Slack would refuse the whole message for one block it does not know
    return [out]


def _unique_action_ids(elements: list[Any]) -> list[Any]:
    # Slack wants action ids unique within a block; a clash gets a suffix rather than a refusal.
    seen: set[str] = set()
    out = []
    for element in elements:
        aid = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(aid, str):
            n = 2
            new = aid
            while new in seen:
                new, n = f"{aid[: MAX_ID - 6]}:{n}", n + 1
            seen.add(new)
            element = {**element, "action_id": new}
        out.append(element)
    return out


def block_text_size(value: Any) -> int:
    """Text characters in blocks, counted as the cumulative cap counts them."""
    if isinstance(value, dict):
        return sum(
            slack_len(v) if k == "text" and isinstance(v, str) else block_text_size(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(block_text_size(v) for v in value)
    return 0


def _shrink(block: Block, budget: int) -> Block | None:
    """``block`` cut to ``budget`` text characters, or None if nothing useful fits."""
    kind = block.get("type")
    if budget < 40:
        return None
    if kind == "table":
        rows = block["rows"]
        sizes = [block_text_size(row) for row in rows]
        notice_size = block_text_size(_with_more_rows(rows, 2)[-1])
        used, keep = sizes[0] + notice_size, 1  # header and notice row
        while keep < len(rows) - 1 and used + sizes[keep] <= budget:
            used, keep = used + sizes[keep], keep + 1
        candidate = {**block, "rows": _with_more_rows(rows, keep + 1)}
        return candidate if keep > 1 and block_text_size(candidate) <= budget else None
    if kind == "section" and isinstance(block.get("text"), dict) and "fields" not in block:
        return {**block, "text": {**block["text"], "text": truncate(block["text"]["text"], budget)}}
    if kind == "markdown" and isinstance(block.get("text"), str):
        return {**block, "text": truncate(block["text"], budget)}
    if kind == "context":
        text = " ".join(e.get("text", "") for e in block["elements"] if isinstance(e, dict))
        return context(truncate(text, min(budget, MAX_CONTEXT_TEXT))) if text else None
    return None


def _table_as_code(block: Block) -> Block:
    rows = [
        [str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in r]
        for r in block.get("rows") or []
    ]
    body = tabulate(
        rows[1:], headers=rows[0] if rows else (), tablefmt="simple", disable_numparse=True
    )
    return section("```" + escape_mrkdwn(body).replace("```", "ˋˋˋ") + "```")


def fit_message(blocks: list[Block], text: str) -> tuple[list[Block], str]:
    """``blocks`` and ``text`` cut to every Slack limit, with visible "… n more" notices.

    Returns new values; the arguments are not changed. Whatever goes in, Slack accepts what
    comes out: blocks ≤ 50, each block's own limits, one table, total text ≤ 12,000, text ≤ 40,000.
    """
    fitted: list[Block] = []
    tables = 0
    for block in copy.deepcopy(blocks):
        for part in _fit_block(block):
            if part.get("type") == "table":
                tables += 1
                if tables > 1:  # only one table per message: later ones become code blocks
                    part = _fit_block(_table_as_code(part))[0]
            fitted.append(part)
    _drop_bad_block_ids(fitted)
    fitted = _fit_budget(fitted)
    if not text:
        text = fallback_from_blocks(fitted)
    return fitted, truncate(text, MAX_MESSAGE_TEXT)


def _drop_bad_block_ids(blocks: list[Block]) -> None:
    seen: set[str] = set()
    for block in blocks:
        bid = block.get("block_id")
        if bid is None:
            continue
        if not isinstance(bid, str) or bid in seen or slack_len(bid) > MAX_ID:
            del block["block_id"]
        else:
            seen.add(bid)


def _fit_budget(blocks: list[Block]) -> list[Block]:
    """Keep blocks in order within 50 blocks and the total text budget; cut or drop the rest.

    A final actions block (Prev/Next, Share) is kept ahead of everything else: it is small and
    it is how the reader gets to what was cut.
    """
    last = blocks[-1] if blocks else {}
    keep_tail = last.get("type") == "actions" and block_text_size(last) <= 2_000
    tail = [last] if keep_tail else []
    body = blocks[: len(blocks) - len(tail)]
    notice_room = 60
    text_left = MAX_TOTAL_TEXT - notice_room - block_text_size(tail)
    slots_left = MAX_BLOCKS - 1 - len(tail)
    kept: list[Block] = []
    dropped = 0
    for block in body:
        size = block_text_size(block)
        if slots_left > 0 and size <= text_left:
            kept.append(block)
        else:
            smaller = _shrink(block, text_left) if slots_left > 0 else None
            if smaller is None:
                dropped += 1
                continue
            kept.append(smaller)
            size = block_text_size(smaller)
        text_left -= size
        slots_left -= 1
    if dropped:
        kept.append(context(f"… {dropped} more blocks not shown"))
    return kept + tail


def fallback_from_blocks(blocks: list[Block]) -> str:
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and isinstance(text.get("text"), str) and text["text"]:
            return truncate(text["text"], 200)
    return "gepetto"
