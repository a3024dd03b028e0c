"""View models: shape checks and the JSON round trip that ``--json`` relies on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gepetto_core.views import (
    DEPLOY_STEPS,
    Column,
    ColumnKind,
    Composite,
    Message,
    PlanView,
    Progress,
    RowAction,
    Table,
    dump_result,
    load_result,
)

DEPLOY = RowAction(label="Deploy", action_id="deploy", value="pa-1", style="primary")


def _table(rows: int, actions: list[object] | None = None) -> Table:
    return Table(
        title="scales",
        columns=[Column(key="name", title="Chute"), Column(key="n", title="N", kind="int")],
        rows=[{"name": f"c{i}", "n": i} for i in range(rows)],
        actions_per_row=actions,
    )


def test_one_action_per_row_is_accepted_as_a_plain_button() -> None:
    table = _table(2, [DEPLOY, None])
    assert table.actions_per_row == [[DEPLOY], []]
    assert table.row_actions(0) == [DEPLOY]


def test_actions_must_match_the_rows() -> None:
    with pytest.raises(ValidationError, match="actions_per_row has 1 entries for 2 rows"):
        _table(2, [DEPLOY])


def test_duplicate_column_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate column keys"):
        Table(title="t", columns=[Column(key="a", title="A"), Column(key="a", title="B")])


def test_view_models_are_frozen() -> None:
    message = Message(text="hi")
    with pytest.raises(ValidationError):
        message.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("current", "failed", "states"),
    [
        (0, False, ["running"] + ["pending"] * 6),
        (3, False, ["done"] * 3 + ["running"] + ["pending"] * 3),
        (3, True, ["done"] * 3 + ["failed"] + ["pending"] * 3),
        (7, False, ["done"] * 7),
    ],
)
def test_progress_states(current: int, failed: bool, states: list[str]) -> None:
    progress = Progress(current=current, failed=failed)
    assert [name for name, _ in progress.states()] == list(DEPLOY_STEPS)
    assert [state for _, state in progress.states()] == states
    assert progress.finished is (current == len(DEPLOY_STEPS))


@pytest.mark.parametrize(("current", "failed"), [(-1, False), (8, False), (7, True)])
def test_progress_refuses_impossible_positions(current: int, failed: bool) -> None:
    with pytest.raises(ValidationError):
        Progress(current=current, failed=failed)


def test_json_round_trip_of_every_kind() -> None:
    cell_id = uuid.uuid4()
    result = Composite(
        items=[
            Table(
                title="t",
                columns=[Column(key=k.value, title=k.value, kind=k) for k in ColumnKind],
                rows=[
                    {
                        "text": "x",
                        "int": 3,
                        "float": 1.5,
                        "money": 2.25,
                        "percent": 0.5,
                        "bool": True,
                        "datetime": datetime(2025, 1, 2, 3, 4, tzinfo=UTC),
                        "duration": timedelta(minutes=5),
                        "id": cell_id,
                    }
                ],
                data_age_seconds=12.0,
                actions_per_row=[DEPLOY],
            ),
            Message(level="error", text="boom", details=["a", "b"]),
            PlanView(title="p", steps=["one"], facts={"gpus": 8, "ok": True}, warnings=["w"]),
            Progress(current=2, detail="waiting for the job"),
        ]
    )
    dumped = dump_result(result)
    text = json.dumps(dumped)  # must be plain JSON
    again = load_result(json.loads(text))
    assert isinstance(again, Composite)
    assert [item.kind for item in again.items] == ["table", "message", "plan", "progress"]
    assert dump_result(again) == dumped
    table = again.items[0]
    assert isinstance(table, Table)
    assert table.rows[0]["bool"] is True
    assert table.rows[0]["id"] == str(cell_id)
