"""Property: whatever blocks go into ``fit_message``, the Slack double's judge accepts the result.

The strategies build messages that break many limits at once (too many blocks, long and
astral-plane text, wide and long tables, crowded actions and context blocks); the judge in
``gepetto_sandbox.slack`` is written independently of the renderer.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import fit_message, render_slack
from gepetto_core.views import Column, ColumnKind, Message, Progress, RowAction, Table
from gepetto_sandbox.slack import check_message

# Text with ASCII, CJK, emoji (2 UTF-16 units each) and Slack's control characters.
ALPHABET = st.sampled_from([*"ab <>&*`_\n", "東", "京", "😀", "🚀", "é"])


def _text(max_size: int) -> st.SearchStrategy[str]:
    short = st.text(ALPHABET, min_size=0, max_size=40)
    long = st.builds(
        lambda s, n: s * n, st.text(ALPHABET, min_size=1, max_size=8), st.integers(1, max_size)
    )
    return st.one_of(short, long)


def _text_obj(kind: str, max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda t: {"type": kind, "text": t}, _text(max_size))


def _button() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda label, aid, value, styled: {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": aid,
            "value": value,
            **(
                {
                    "style": "danger",
                    "confirm": {
                        "title": {"type": "plain_text", "text": label},
                        "text": {"type": "mrkdwn", "text": value},
                        "confirm": {"type": "plain_text", "text": label},
                        "deny": {"type": "plain_text", "text": "no"},
                    },
                }
                if styled
                else {}
            ),
        },
        _text(60),
        st.sampled_from(["deploy", "retry", "a" * 300]),
        _text(700),
        st.booleans(),
    )


def _table_block() -> st.SearchStrategy[dict[str, Any]]:
    cell = st.builds(lambda t: {"type": "raw_text", "text": t}, _text(300))
    return st.integers(1, 24).flatmap(
        lambda width: st.builds(
            lambda rows, repeat: {"type": "table", "rows": rows * repeat},
            st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1, max_size=4),
            st.integers(1, 40),
        )
    )


BLOCK = st.one_of(
    st.builds(lambda t: {"type": "section", "text": t}, _text_obj("mrkdwn", 900)),
    st.builds(
        lambda t: {"type": "section", "text": {"type": "mrkdwn", "text": "```" + t + "```"}},
        _text(900),
    ),
    st.builds(
        lambda f: {"type": "section", "fields": f},
        st.lists(_text_obj("mrkdwn", 500), min_size=1, max_size=14),
    ),
    st.builds(lambda t: {"type": "header", "text": t}, _text_obj("plain_text", 100)),
    st.builds(
        lambda e: {"type": "context", "elements": e},
        st.lists(_text_obj("mrkdwn", 500), min_size=1, max_size=14),
    ),
    st.builds(
        lambda e: {"type": "actions", "elements": e}, st.lists(_button(), min_size=1, max_size=40)
    ),
    st.just({"type": "divider"}),
    _table_block(),
)


SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=SLOW_OK)
@given(blocks=st.lists(BLOCK, max_size=60), text=_text(6_000))
def test_fit_message_output_is_always_accepted(blocks: list[dict[str, Any]], text: str) -> None:
    fitted, fitted_text = fit_message(blocks, text)
    verdict = check_message(fitted_text, fitted)
    assert verdict.error is None, verdict.problems


KINDS = list(ColumnKind)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=SLOW_OK)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=25),
    rows=st.integers(0, 300),
    cell=_text(700),
    with_actions=st.booleans(),
    page=st.integers(0, 40),
)
def test_rendered_tables_are_always_accepted(
    kinds: list[ColumnKind], rows: int, cell: str, with_actions: bool, page: int
) -> None:
    values: dict[ColumnKind, Any] = {
        ColumnKind.TEXT: cell,
        ColumnKind.INT: 7,
        ColumnKind.FLOAT: 1.5,
        ColumnKind.MONEY: 3.2,
        ColumnKind.PERCENT: 0.5,
        ColumnKind.BOOL: True,
        ColumnKind.DATETIME: None,
        ColumnKind.DURATION: 3600,
        ColumnKind.ID: cell,
    }
    table = Table(
        title=cell or "t",
        columns=[Column(key=f"k{i}", title=cell, kind=k) for i, k in enumerate(kinds)],
        rows=[{f"k{i}": values[k] for i, k in enumerate(kinds)} for _ in range(rows)],
        note=cell or None,
        actions_per_row=[
            RowAction(label=cell or "Deploy", action_id="deploy", value=cell) for _ in range(rows)
        ]
        if with_actions
        else None,
    )
    message = render_slack(table, page=page, page_context="scales", share_value="s")
    assert check_message(message.text, message.blocks).error is None
    other = render_slack(Message(level="error", text=cell * 10, details=[cell] * 30))
    assert check_message(other.text, other.blocks).error is None
    progress = render_slack(Progress(current=1, detail=cell * 20))
    assert check_message(progress.text, progress.blocks).error is None
