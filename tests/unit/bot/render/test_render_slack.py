"""Slack builders and ``fit_message``, judged by the Slack double's independent checker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.render import (
    PAGE_NEXT_ACTION_ID,
    PAGE_PREV_ACTION_ID,
    SHARE_ACTION_ID,
    build_progress_blocks,
    build_result_blocks,
    build_table_blocks,
    fit_message,
    parse_page_value,
    render_slack,
    truncate,
)
from gepetto_core.commands.scaling_views import scales_table
from gepetto_core.scheduling import PairRank, PlanPolicy
from gepetto_core.views import (
    Column,
    Composite,
    Confirm,
    Message,
    PlanView,
    Progress,
    RowAction,
    Table,
)
from gepetto_sandbox.slack import check_message, slack_len, total_block_text


def _accepted(blocks: list[dict[str, Any]], text: str) -> None:
    verdict = check_message(text, blocks)
    assert verdict.error is None, verdict.problems


def _table(rows: int, *, cell: str = "chute", cols: int = 3, actions: bool = False) -> Table:
    columns = [Column(key=f"c{j}", title=f"Col {j}") for j in range(cols - 1)]
    columns.append(Column(key="cost", title="Cost", kind="money"))
    return Table(
        title="scales",
        columns=columns,
        rows=[
            {**{f"c{j}": f"{cell}-{i}" for j in range(cols - 1)}, "cost": 1.5} for i in range(rows)
        ],
        data_age_seconds=42,
        actions_per_row=[
            RowAction(
                label="Deploy",
                action_id="deploy",
                value=f"pa-{i}",
                style="primary",
                confirm=Confirm(title="Deploy?", text="8 GPUs on gpu-1"),
            )
            for i in range(rows)
        ]
        if actions
        else None,
    )


def _of_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == kind]


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in _of_type(blocks, "actions") for e in b["elements"]]


def test_small_table_is_a_native_table_with_age_footer() -> None:
    blocks = build_table_blocks(_table(3))
    assert [b["type"] for b in blocks] == ["header", "table", "context"]
    rows = blocks[1]["rows"]
    assert [c["text"] for c in rows[0]] == ["Col 0", "Col 1", "Cost"]
    assert [c["text"] for c in rows[1]] == ["chute-0", "chute-0", "$1.50/h"]
    assert blocks[1]["column_settings"][2] == {"align": "right"}
    assert blocks[2]["elements"][0]["text"] == "validator data 42 s old"
    _accepted(*fit_message(blocks, "t"))


@pytest.mark.parametrize(
    ("policy", "header", "footer"),
    [
        (PlanPolicy(), "value $/h", "value is the $/h one more instance is expected to earn"),
        (PlanPolicy(cost_weight=0.0), "value $/h", "less nothing for its GPUs"),
    ],
)
def test_scales_names_the_unit_of_value(policy: PlanPolicy, header: str, footer: str) -> None:
    pairs = [PairRank("c1", "chutes/Qwen3-32B", "s1", "gpu-01", "h200", 2, 3.1234, 5.0, True, None)]
    blocks = build_table_blocks(scales_table(pairs, policy, 42))
    _accepted(blocks, "scales")
    [table] = _of_type(blocks, "table")
    titles = [c["text"] for c in table["rows"][0]]
    assert header in titles and "value" not in titles
    assert table["rows"][1][titles.index(header)]["text"] == "3.12"
    [footer_block] = _of_type(blocks, "context")
    assert footer in footer_block["elements"][0]["text"]


def test_row_buttons_carry_the_opaque_value_and_row_number() -> None:
    blocks = build_table_blocks(_table(3, actions=True))
    assert [c["text"] for c in blocks[1]["rows"][2]][:2] == ["2", "chute-1"]
    buttons = _buttons(blocks)
    assert [b["text"]["text"] for b in buttons] == ["Deploy #1", "Deploy #2", "Deploy #3"]
    assert [b["value"] for b in buttons] == ["pa-0", "pa-1", "pa-2"]
    assert {b["action_id"] for b in buttons} == {"deploy"}
    assert buttons[0]["confirm"]["style"] == "danger"
    _accepted(*fit_message(blocks, "t"))


@pytest.mark.parametrize(
    ("page", "expected_ids", "first_row", "footer"),
    [
        (0, [PAGE_NEXT_ACTION_ID], "chute-0", "rows 1–20 of 500 · page 1/25"),
        (
            7,
            [PAGE_PREV_ACTION_ID, PAGE_NEXT_ACTION_ID],
            "chute-140",
            "rows 141–160 of 500 · page 8/25",
        ),
        (24, [PAGE_PREV_ACTION_ID], "chute-480", "rows 481–500 of 500 · page 25/25"),
        (99, [PAGE_PREV_ACTION_ID], "chute-480", "rows 481–500 of 500 · page 25/25"),
    ],
)
def test_500_rows_paginate(page: int, expected_ids: list[str], first_row: str, footer: str) -> None:
    blocks = build_table_blocks(_table(500), page=page, page_context="scales -g h200")
    nav = blocks[-1]
    assert [e["action_id"] for e in nav["elements"]] == expected_ids
    for element in nav["elements"]:
        context, target = parse_page_value(element["value"])
        assert context == "scales -g h200"
        assert target == min(page, 24) + (1 if element["action_id"] == PAGE_NEXT_ACTION_ID else -1)
    table = _of_type(blocks, "table")[0]
    assert table["rows"][1][0]["text"] == first_row
    assert len(table["rows"]) == 21
    assert footer in blocks[-2]["elements"][0]["text"]
    _accepted(*fit_message(blocks, "t"))


def test_pages_with_buttons_are_smaller_and_fit() -> None:
    message = render_slack(_table(500, actions=True), page=3, page_context="ctx")
    assert len(_of_type(message.blocks, "table")[0]["rows"]) == 11
    assert [b["text"]["text"] for b in _buttons(message.blocks)][:2] == ["Deploy #31", "Deploy #32"]
    _accepted(message.blocks, message.text)


def test_page_context_must_be_short() -> None:
    with pytest.raises(ValueError, match="opaque id"):
        build_table_blocks(_table(50), page_context="x" * 1801)


def test_4000_char_unicode_cells_are_cut_for_reading() -> None:
    message = render_slack(_table(5, cell="東京😀" * 1334))
    cells = [c["text"] for c in _of_type(message.blocks, "table")[0]["rows"][1]]
    assert len(cells[0]) == 200 and cells[0].endswith("…")
    _accepted(message.blocks, message.text)


def test_ephemeral_variant_has_a_share_button() -> None:
    blocks = build_result_blocks(Message(text="hi"), share_value="share-123")
    share = blocks[-1]["elements"][0]
    assert (share["action_id"], share["value"], share["text"]["text"]) == (
        SHARE_ACTION_ID,
        "share-123",
        "Share in channel",
    )


def test_progress_is_one_line_per_step() -> None:
    blocks = build_progress_blocks(Progress(current=4, detail="pulling image"))
    assert blocks[0]["text"]["text"].split("\n") == [
        "*deploy*",
        "✅ claimed",
        "✅ launch config",
        "✅ service",
        "✅ job",
        "⏳ pod running — pulling image",
        "▫️ instance verified",
        "▫️ active",
    ]
    failed = build_progress_blocks(Progress(current=1, failed=True, detail="423 no capacity"))
    assert "❌ launch config — 423 no capacity" in failed[0]["text"]["text"]


def test_plan_with_confirm_buttons_and_composite() -> None:
    plan = PlanView(
        title="deploy llama",
        steps=["claim", "launch"],
        facts={"GPUs": 8},
        warnings=["preempts d-1"],
        actions=[
            RowAction(label="Confirm", action_id="confirm", value="pa-9", style="primary"),
            RowAction(label="Cancel", action_id="cancel", value="pa-9"),
        ],
    )
    message = render_slack(
        Composite(items=[Message(level="warning", text="stale data"), plan, _table(30)])
    )
    kinds = [b["type"] for b in message.blocks]
    assert kinds.count("divider") == 2 and kinds.count("table") == 1
    assert message.text == "⚠️ stale data · plan: deploy llama · scales (30 rows)"
    _accepted(message.blocks, message.text)


# -- fit_message: each case breaks Slack's rules on the way in and is accepted on the way out --


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _raw_table(rows: int, cols: int, cell: str = "x") -> dict[str, Any]:
    return {
        "type": "table",
        "rows": [[{"type": "raw_text", "text": f"{cell}{r}"}] * cols for r in range(rows)],
    }


FIT_CASES: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("60 blocks", [_section(f"s{i}") for i in range(60)], "t", "… 11 more blocks not shown"),
    ("4,000-char section", [_section("a" * 4000)], "t", "more chars"),
    ("code block", [_section("```" + "\n".join(["row " * 20] * 100) + "```")], "t", "more lines"),
    ("500-row table", [_raw_table(500, 4)], "t", "more rows"),
    ("25-column table", [_raw_table(3, 25)], "t", "… 6 more cols"),
    ("two tables", [_raw_table(3, 2), _raw_table(3, 2)], "t", "```"),
    (
        "100-char button",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "b" * 100},
                        "action_id": "a",
                        "value": "v",
                    }
                ],
            }
        ],
        "t",
        "more chars",
    ),
    (
        "30 buttons",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": f"b{i}"},
                        "action_id": f"a{i}",
                    }
                    for i in range(30)
                ],
            }
        ],
        "t",
        "b29",
    ),
    (
        "long header",
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 400}}],
        "t",
        "more chars",
    ),
    (
        "12 context elements",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 1500}] * 12}],
        "t",
        "more",
    ),
    ("50,000-char text", [_section("x")], "y" * 50_000, "more chars"),
    ("total text over budget", [_section("a" * 2900) for _ in range(8)], "t", "more"),
]


@pytest.mark.parametrize(
    ("name", "blocks", "text", "marker"), FIT_CASES, ids=[c[0] for c in FIT_CASES]
)
def test_fit_message_makes_it_postable(
    name: str, blocks: list[dict[str, Any]], text: str, marker: str
) -> None:
    assert check_message(text, blocks).error is not None  # the case really is over a limit
    before = json.dumps(blocks)
    fitted, fitted_text = fit_message(blocks, text)
    _accepted(fitted, fitted_text)
    assert json.dumps(blocks) == before  # the input is left alone
    assert marker in json.dumps(fitted, ensure_ascii=False) + fitted_text


def test_500_row_table_notice_counts_every_hidden_row() -> None:
    fitted, _ = fit_message([_raw_table(501, 4, cell="r")], "t")  # header + 500 rows
    rows = fitted[0]["rows"]
    shown = len(rows) - 2  # minus header and notice
    hidden = int(rows[-1][0]["text"].split()[1])
    assert shown + hidden == 500
    assert total_block_text(fitted) <= 12_000


def test_fit_keeps_the_navigation_buttons() -> None:
    blocks = [_section(f"s{i}") for i in range(70)]
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Next ›"},
                    "action_id": PAGE_NEXT_ACTION_ID,
                    "value": "1",
                }
            ],
        }
    )
    fitted, _ = fit_message(blocks, "t")
    assert len(fitted) == 50
    assert fitted[-1]["elements"][0]["action_id"] == PAGE_NEXT_ACTION_ID
    assert fitted[-2]["elements"][0]["text"] == "… 22 more blocks not shown"  # 48 + 22 = 70


@pytest.mark.parametrize("limit", [1, 5, 30, 75, 3000])
@pytest.mark.parametrize("text", ["a" * 5000, "😀" * 4000, "日本" * 3000, "a😀" * 2500])
def test_truncate_stays_within_the_limit(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    assert slack_len(cut) <= limit
    assert "\ud83d" not in cut  # never half a surrogate pair
