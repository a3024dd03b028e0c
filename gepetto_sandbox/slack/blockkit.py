"""The Slack double's Block Kit judge: would Slack accept this message or view?

Written independently of ``bot.render`` on purpose: it is the renderer's judge, so the two must
not share code. Problems are worded like Slack's ``response_metadata.messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Block Kit limits (`docs/protocol.md#slack-limits`). Conservative where Slack's docs are vague:
# one table per message, 2,000 chars per table cell, and a 12,000-char total block text
# (msg_blocks_too_long was observed at ~12-13 k).

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_TOTAL_BLOCK_TEXT = 12_000
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2_000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_BUTTON_URL = 3_000
MAX_ID_LENGTH = 255
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_TABLE_ROWS = 100
MAX_TABLE_CELLS = 20
MAX_TABLE_CELL_TEXT = 2_000
MAX_TABLES_PER_MESSAGE = 1
MAX_MARKDOWN_BLOCK_TEXT = 12_000
MAX_MODAL_TITLE = 24
MAX_PRIVATE_METADATA = 3_000


@dataclass(frozen=True)
class Verdict:
    """Slack's answer to a message: ``error`` is None when it would be accepted."""

    error: str | None
    problems: tuple[str, ...] = ()


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji outside the BMP counts 2).

    Slack does not say whether limits count code points or UTF-16 units; the larger is safe.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def total_block_text(value: Any) -> int:
    """Characters in every ``text`` string inside blocks (what the cumulative cap counts)."""
    if isinstance(value, dict):
        return sum(
            slack_len(v) if k == "text" and isinstance(v, str) else total_block_text(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(total_block_text(v) for v in value)
    return 0


class _Checker:
    """Collects problems with json-pointer locations, worded like Slack's response_metadata."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"[ERROR] {what} [json-pointer:{where}]")

    def max_len(self, where: str, value: Any, limit: int) -> None:
        if not isinstance(value, str):
            self.fail(where, "must be a string")
        elif slack_len(value) > limit:
            self.fail(where, f"must be less than {limit + 1} characters")

    def text_object(self, where: str, obj: Any, limit: int, *, plain_only: bool = False) -> None:
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if not isinstance(obj, dict) or obj.get("type") not in allowed:
            self.fail(where, f"must be a text object of type {' or '.join(allowed)}")
            return
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.fail(f"{where}/text", "must be at least 1 character")
            return
        self.max_len(f"{where}/text", text, limit)

    def block_id(self, where: str, block: dict[str, Any], seen: set[str]) -> None:
        if "block_id" not in block:
            return
        bid = block["block_id"]
        self.max_len(f"{where}/block_id", bid, MAX_ID_LENGTH)
        if bid in seen:
            self.fail(f"{where}/block_id", "duplicate block_id")
        seen.add(bid)

    def confirm(self, where: str, obj: Any) -> None:
        if not isinstance(obj, dict):
            self.fail(where, "must be a confirmation object")
            return
        self.text_object(f"{where}/title", obj.get("title"), MAX_CONFIRM_TITLE, plain_only=True)
        self.text_object(f"{where}/text", obj.get("text"), MAX_CONFIRM_TEXT)
        self.text_object(
            f"{where}/confirm", obj.get("confirm"), MAX_CONFIRM_BUTTON, plain_only=True
        )
        self.text_object(f"{where}/deny", obj.get("deny"), MAX_CONFIRM_BUTTON, plain_only=True)
        if obj.get("style") not in (None, "primary", "danger"):
            self.fail(f"{where}/style", "must be primary or danger")

    def element(self, where: str, element: Any, action_ids: set[str]) -> None:
        if not isinstance(element, dict):
            self.fail(where, "must be an object")
            return
        if "action_id" in element:
            aid = element["action_id"]
            self.max_len(f"{where}/action_id", aid, MAX_ID_LENGTH)
            if aid in action_ids:
                self.fail(f"{where}/action_id", "duplicate action_id in block")
            action_ids.add(aid)
        kind = element.get("type")
        if kind == "button":
            self.text_object(f"{where}/text", element.get("text"), MAX_BUTTON_TEXT, plain_only=True)
            if "value" in element:
                self.max_len(f"{where}/value", element["value"], MAX_BUTTON_VALUE)
            if "url" in element:
                self.max_len(f"{where}/url", element["url"], MAX_BUTTON_URL)
            if element.get("style") not in (None, "primary", "danger"):
                self.fail(f"{where}/style", "must be primary or danger")
            if "confirm" in element:
                self.confirm(f"{where}/confirm", element["confirm"])
        elif kind not in (
            "static_select",
            "external_select",
            "users_select",
            "conversations_select",
            "overflow",
            "datepicker",
            "plain_text_input",
            "checkboxes",
            "radio_buttons",
            "image",
        ):
            self.fail(f"{where}/type", f"unsupported element type {kind!r}")

    def block(self, where: str, block: Any, seen_ids: set[str], surface: str) -> None:
        if not isinstance(block, dict):
            self.fail(where, "must be an object")
            return
        self.block_id(where, block, seen_ids)
        kind = block.get("type")
        if kind == "section":
            self._section(where, block)
        elif kind == "header":
            self.text_object(f"{where}/text", block.get("text"), MAX_HEADER_TEXT, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                self.fail(f"{where}/elements", f"must hold 1 to {MAX_CONTEXT_ELEMENTS} items")
                return
            for i, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") == "image":
                    continue
                self.text_object(f"{where}/elements/{i}", el, MAX_CONTEXT_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
                self.fail(f"{where}/elements", f"must hold 1 to {MAX_ACTIONS_ELEMENTS} items")
                return
            ids: set[str] = set()
            for i, el in enumerate(elements):
                self.element(f"{where}/elements/{i}", el, ids)
        elif kind == "table":
            self._table(where, block)
        elif kind == "markdown":
            self.max_len(f"{where}/text", block.get("text"), MAX_MARKDOWN_BLOCK_TEXT)
        elif kind == "rich_text":
            if not isinstance(block.get("elements"), list):
                self.fail(f"{where}/elements", "must be an array")
        elif kind == "input" and surface == "view":
            self.text_object(f"{where}/label", block.get("label"), 2_000, plain_only=True)
            self.element(f"{where}/element", block.get("element"), set())
        elif kind not in ("divider", "image"):
            self.fail(f"{where}/type", f"unsupported block type {kind!r}")

    def _section(self, where: str, block: dict[str, Any]) -> None:
        if "text" not in block and "fields" not in block:
            self.fail(where, "must provide text or fields")
        if "text" in block:
            self.text_object(f"{where}/text", block["text"], MAX_SECTION_TEXT)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_SECTION_FIELDS:
                self.fail(f"{where}/fields", f"must hold 1 to {MAX_SECTION_FIELDS} items")
            else:
                for i, f in enumerate(fields):
                    self.text_object(f"{where}/fields/{i}", f, MAX_FIELD_TEXT)
        if "accessory" in block:
            self.element(f"{where}/accessory", block["accessory"], set())

    def _table(self, where: str, block: dict[str, Any]) -> None:
        rows = block.get("rows")
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_TABLE_ROWS:
            self.fail(f"{where}/rows", f"must hold 1 to {MAX_TABLE_ROWS} rows")
            return
        width = len(rows[0]) if isinstance(rows[0], list) else -1
        for r, row in enumerate(rows):
            if not isinstance(row, list) or not 1 <= len(row) <= MAX_TABLE_CELLS:
                self.fail(f"{where}/rows/{r}", f"must hold 1 to {MAX_TABLE_CELLS} cells")
                continue
            if len(row) != width:
                self.fail(f"{where}/rows/{r}", "rows must have the same number of cells")
            for c, cell in enumerate(row):
                cw = f"{where}/rows/{r}/{c}"
                if not isinstance(cell, dict) or cell.get("type") not in (
                    "raw_text",
                    "rich_text",
                    "raw_number",
                ):
                    self.fail(cw, "must be a raw_text, raw_number or rich_text cell")
                elif cell["type"] == "raw_text":
                    if not cell.get("text"):
                        self.fail(f"{cw}/text", "must be at least 1 character")
                    else:
                        self.max_len(f"{cw}/text", cell.get("text"), MAX_TABLE_CELL_TEXT)
        settings = block.get("column_settings")
        if settings is not None:
            if not isinstance(settings, list) or len(settings) > MAX_TABLE_CELLS:
                self.fail(f"{where}/column_settings", f"must hold at most {MAX_TABLE_CELLS}")
            else:
                for i, s in enumerate(settings):
                    if s is not None and (
                        not isinstance(s, dict)
                        or s.get("align", "left") not in ("left", "center", "right")
                    ):
                        self.fail(f"{where}/column_settings/{i}", "invalid column setting")


def check_message(text: Any, blocks: Any) -> Verdict:
    """Would Slack accept a message with this ``text`` and ``blocks``? (chat.* and response_url)"""
    if text is not None and not isinstance(text, str):
        return Verdict("invalid_arguments", ("text must be a string",))
    if isinstance(text, str) and slack_len(text) > MAX_MESSAGE_TEXT:
        return Verdict("msg_too_long", (f"text has {slack_len(text)} characters",))
    if blocks is None or blocks == []:
        return Verdict(None) if text else Verdict("no_text")
    if not isinstance(blocks, list):
        return Verdict("invalid_blocks_format", ("blocks must be an array",))
    checker = _Checker()
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        checker.fail("/blocks", f"must be less than {MAX_MESSAGE_BLOCKS + 1} items")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        checker.block(f"/blocks/{i}", block, seen, "message")
    tables = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "table")
    if tables > MAX_TABLES_PER_MESSAGE:
        checker.fail("/blocks", f"only {MAX_TABLES_PER_MESSAGE} table block is allowed")
    if checker.problems:
        return Verdict("invalid_blocks", tuple(checker.problems))
    size = total_block_text(blocks)
    if size > MAX_TOTAL_BLOCK_TEXT:
        return Verdict("msg_blocks_too_long", (f"blocks hold {size} characters of text",))
    return Verdict(None)


def check_view(view: Any) -> Verdict:
    """Would Slack accept this modal / Home tab view? (views.open, views.update)"""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return Verdict("invalid_arguments", ("view must be a modal or home view",))
    checker = _Checker()
    if view["type"] == "modal":
        checker.text_object("/view/title", view.get("title"), MAX_MODAL_TITLE, plain_only=True)
        for key in ("submit", "close"):
            if key in view:
                checker.text_object(f"/view/{key}", view[key], MAX_MODAL_TITLE, plain_only=True)
    if "private_metadata" in view:
        checker.max_len("/view/private_metadata", view["private_metadata"], MAX_PRIVATE_METADATA)
    if "callback_id" in view:
        checker.max_len("/view/callback_id", view["callback_id"], MAX_ID_LENGTH)
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
        checker.fail("/view/blocks", f"must be an array of at most {MAX_VIEW_BLOCKS} items")
    else:
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            checker.block(f"/view/blocks/{i}", block, seen, "view")
    if checker.problems:
        return Verdict("invalid_arguments", tuple(checker.problems))
    return Verdict(None)
