"""The Slack double's Block Kit judge: it must refuse what Slack refuses, or it judges nothing."""

from __future__ import annotations

from typing import Any

import pytest

from gepetto_sandbox.slack import check_message, check_view, total_block_text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str = "Go", **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": "go",
        **extra,
    }


def _table(rows: int, cols: int, cell: str = "x") -> dict[str, Any]:
    return {
        "type": "table",
        "rows": [[{"type": "raw_text", "text": cell}] * cols for _ in range(rows)],
    }


GOOD: list[tuple[str, Any, Any]] = [
    ("text only", "hello", None),
    ("50 blocks", "t", [_section("x")] * 50),
    ("3,000-char section", "t", [_section("a" * 3000)]),
    (
        "150-char header",
        "t",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}],
    ),
    (
        "25 buttons",
        "t",
        [{"type": "actions", "elements": [_button(action_id=f"a{i}") for i in range(25)]}],
    ),
    (
        "75-char button, 2,000-char value",
        "t",
        [{"type": "actions", "elements": [_button("b" * 75, value="v" * 2000)]}],
    ),
    ("100x20 table", "t", [_table(100, 20)]),
    ("40,000-char text", "a" * 40_000, None),
    (
        "divider and context",
        "t",
        [
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 2000}]},
        ],
    ),
]

BAD: list[tuple[str, Any, Any, str]] = [
    ("no text, no blocks", "", None, "no_text"),
    ("40,001-char text", "a" * 40_001, None, "msg_too_long"),
    ("emoji count twice", "😀" * 20_001, None, "msg_too_long"),
    ("51 blocks", "t", [_section("x")] * 51, "invalid_blocks"),
    ("3,001-char section", "t", [_section("a" * 3001)], "invalid_blocks"),
    ("empty section text", "t", [_section("")], "invalid_blocks"),
    (
        "151-char header",
        "t",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "invalid_blocks",
    ),
    (
        "mrkdwn header",
        "t",
        [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
        "invalid_blocks",
    ),
    (
        "26 buttons",
        "t",
        [{"type": "actions", "elements": [_button(action_id=f"a{i}") for i in range(26)]}],
        "invalid_blocks",
    ),
    (
        "76-char button",
        "t",
        [{"type": "actions", "elements": [_button("b" * 76)]}],
        "invalid_blocks",
    ),
    (
        "2,001-char value",
        "t",
        [{"type": "actions", "elements": [_button(value="v" * 2001)]}],
        "invalid_blocks",
    ),
    (
        "256-char action_id",
        "t",
        [{"type": "actions", "elements": [_button(action_id="a" * 256)]}],
        "invalid_blocks",
    ),
    (
        "duplicate action_id",
        "t",
        [{"type": "actions", "elements": [_button(), _button()]}],
        "invalid_blocks",
    ),
    (
        "duplicate block_id",
        "t",
        [{**_section("a"), "block_id": "b"}, {**_section("b"), "block_id": "b"}],
        "invalid_blocks",
    ),
    (
        "11 context elements",
        "t",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "invalid_blocks",
    ),
    (
        "2,001-char context",
        "t",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 2001}]}],
        "invalid_blocks",
    ),
    ("101-row table", "t", [_table(101, 2)], "invalid_blocks"),
    ("21-column table", "t", [_table(2, 21)], "invalid_blocks"),
    ("two tables", "t", [_table(2, 2), _table(2, 2)], "invalid_blocks"),
    ("empty table cell", "t", [_table(2, 2, cell="")], "invalid_blocks"),
    (
        "ragged table",
        "t",
        [
            {
                "type": "table",
                "rows": [
                    [{"type": "raw_text", "text": "a"}],
                    [{"type": "raw_text", "text": "a"}, {"type": "raw_text", "text": "b"}],
                ],
            }
        ],
        "invalid_blocks",
    ),
    ("unknown block", "t", [{"type": "carousel_of_doom"}], "invalid_blocks"),
    (
        "confirm text too long",
        "t",
        [
            {
                "type": "actions",
                "elements": [
                    _button(
                        confirm={
                            "title": {"type": "plain_text", "text": "t"},
                            "text": {"type": "mrkdwn", "text": "x" * 301},
                            "confirm": {"type": "plain_text", "text": "y"},
                            "deny": {"type": "plain_text", "text": "n"},
                        }
                    )
                ],
            }
        ],
        "invalid_blocks",
    ),
    ("blocks not a list", "t", {"type": "section"}, "invalid_blocks_format"),
    ("over the total text budget", "t", [_section("a" * 3000)] * 5, "msg_blocks_too_long"),
]


@pytest.mark.parametrize(("name", "text", "blocks"), GOOD, ids=[g[0] for g in GOOD])
def test_accepts(name: str, text: Any, blocks: Any) -> None:
    assert check_message(text, blocks).error is None


@pytest.mark.parametrize(("name", "text", "blocks", "error"), BAD, ids=[b[0] for b in BAD])
def test_refuses(name: str, text: Any, blocks: Any, error: str) -> None:
    verdict = check_message(text, blocks)
    assert verdict.error == error
    assert verdict.problems or error == "no_text"


def test_problems_point_at_the_offending_field() -> None:
    verdict = check_message("t", [_section("ok"), _section("a" * 3001)])
    assert verdict.problems == (
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
    )


def test_total_text_counts_every_text_field() -> None:
    blocks = [
        _section("abc"),
        _table(2, 2, cell="xy"),
        {"type": "actions", "elements": [_button("Go")]},
    ]
    assert total_block_text(blocks) == 3 + 8 + 2


@pytest.mark.parametrize(
    ("view", "error"),
    [
        ({"type": "modal", "title": {"type": "plain_text", "text": "Deploy"}, "blocks": []}, None),
        (
            {"type": "modal", "title": {"type": "plain_text", "text": "T" * 25}, "blocks": []},
            "invalid_arguments",
        ),
        (
            {
                "type": "modal",
                "title": {"type": "plain_text", "text": "T"},
                "blocks": [_section("x")] * 101,
            },
            "invalid_arguments",
        ),
        ({"type": "home", "blocks": [_section("x")] * 100}, None),
        ({"type": "sheet", "blocks": []}, "invalid_arguments"),
    ],
)
def test_views(view: dict[str, Any], error: str | None) -> None:
    assert check_view(view).error == error
