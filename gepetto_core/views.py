"""View models: what a command returns, before anyone decides how it looks.

The command layer answers every command with one of these values (never with formatted text).
The terminal CLI renders them with :mod:`gepetto_core.render_text`, Slack with ``bot.render``,
and ``--json`` prints ``dump_result(result)``. All models are frozen and JSON-serialisable.

    Result = Table | Message | PlanView | Progress | Composite | FleetMap | ReportView

Each model carries a ``kind`` literal so a JSON dump can be read back (``load_result``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from gepetto_core.models.history import FleetReport, FleetSnapshot

# bool comes first so pydantic's smart union keeps True as a bool, not as 1.
Cell = bool | int | float | str | datetime | timedelta | UUID | None


class ColumnKind(StrEnum):
    """How a cell is displayed. The value types each kind expects are listed beside it."""

    TEXT = "text"  # str
    INT = "int"  # int
    FLOAT = "float"  # float
    MONEY = "money"  # float, USD per hour
    PERCENT = "percent"  # float ratio: 0.42 is shown as 42%
    BOOL = "bool"  # bool
    DATETIME = "datetime"  # aware datetime (naive is taken as UTC)
    DURATION = "duration"  # timedelta or seconds
    ID = "id"  # UUID or str; shortened for display unless wide


NUMERIC_KINDS = frozenset(
    {ColumnKind.INT, ColumnKind.FLOAT, ColumnKind.MONEY, ColumnKind.PERCENT, ColumnKind.DURATION}
)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_View):
    key: str
    title: str
    kind: ColumnKind = ColumnKind.TEXT


class Confirm(_View):
    """A confirmation dialog shown before a button acts (Slack ``confirm`` object)."""

    title: str
    text: str
    confirm: str = "Yes"
    deny: str = "Cancel"
    style: Literal["primary", "danger"] | None = "danger"


class RowAction(_View):
    """A button. ``value`` is an opaque id of a pending action kept server-side, never args."""

    label: str
    action_id: str
    value: str
    style: Literal["primary", "danger"] | None = None
    confirm: Confirm | None = None


class Table(_View):
    kind: Literal["table"] = "table"
    title: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = Field(default_factory=list)
    # Age of the validator data behind the rows; None means the data could not be fetched.
    data_age_seconds: float | None = None
    # What the age refers to; None hides the age footer (tables that do not use such data).
    data_label: str | None = "validator data"
    note: str | None = None
    # One list of buttons per row (same order as ``rows``); None when the table has no buttons.
    actions_per_row: list[list[RowAction]] | None = None

    @field_validator("actions_per_row", mode="before")
    @classmethod
    def _one_list_per_row(cls, value: Any) -> Any:
        # Accept a plain RowAction (or None) per row: the common case is one Deploy button.
        if value is None:
            return None
        return [
            [] if item is None else [item] if isinstance(item, RowAction | dict) else item
            for item in value
        ]

    @model_validator(mode="after")
    def _check_shape(self) -> Table:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate column keys in {keys}")
        if self.actions_per_row is not None and len(self.actions_per_row) != len(self.rows):
            raise ValueError(
                f"actions_per_row has {len(self.actions_per_row)} entries for {len(self.rows)} rows"
            )
        return self

    def row_actions(self, index: int) -> list[RowAction]:
        return [] if self.actions_per_row is None else self.actions_per_row[index]


class Message(_View):
    kind: Literal["message"] = "message"
    level: Literal["info", "success", "warning", "error"] = "info"
    text: str
    details: list[str] = Field(default_factory=list)


class PlanView(_View):
    """The plan behind an action, shown before it is applied (and with its Confirm buttons)."""

    kind: Literal["plan"] = "plan"
    title: str
    steps: list[str]
    facts: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    actions: list[RowAction] = Field(default_factory=list)


DEPLOY_STEPS: tuple[str, ...] = (
    "claimed",
    "launch config",
    "service",
    "job",
    "pod running",
    "instance verified",
    "active",
)

StepState = Literal["done", "running", "failed", "pending"]


class Progress(_View):
    """Where a multi-step operation stands. ``current == len(steps)`` means all steps are done."""

    kind: Literal["progress"] = "progress"
    title: str = "deploy"
    steps: list[str] = Field(default_factory=lambda: list(DEPLOY_STEPS))
    current: int = 0
    failed: bool = False
    detail: str | None = None

    @model_validator(mode="after")
    def _check_current(self) -> Progress:
        if not 0 <= self.current <= len(self.steps):
            raise ValueError(f"current={self.current} outside 0..{len(self.steps)}")
        if self.failed and self.current == len(self.steps):
            raise ValueError("a finished operation cannot have failed")
        return self

    @property
    def finished(self) -> bool:
        return self.current == len(self.steps)

    def states(self) -> list[tuple[str, StepState]]:
        out: list[tuple[str, StepState]] = []
        for i, name in enumerate(self.steps):
            if i < self.current:
                out.append((name, "done"))
            elif i == self.current:
                out.append((name, "failed" if self.failed else "running"))
            else:
                out.append((name, "pending"))
        return out


class FleetMap(_View):
    """Every server's GPU slots by state (#26): a terminal grid, or a PNG
    (`gepetto_core.render_png`), with the counts as text beside it."""

    kind: Literal["fleet_map"] = "fleet_map"
    title: str = "fleet"
    fleet: FleetSnapshot


class ReportView(_View):
    """What the fleet earned and wasted over a window (#26): charts and a short summary."""

    kind: Literal["report"] = "report"
    title: str
    report: FleetReport
    summary: list[str] = Field(default_factory=list)


class Composite(_View):
    kind: Literal["composite"] = "composite"
    items: list[Result]


Result = Annotated[
    Table | Message | PlanView | Progress | Composite | FleetMap | ReportView,
    Field(discriminator="kind"),
]

Composite.model_rebuild()

_RESULT_ADAPTER: TypeAdapter[Result] = TypeAdapter(Result)


def dump_result(result: Result) -> dict[str, Any]:
    """The ``--json`` form of a result."""
    dumped: dict[str, Any] = _RESULT_ADAPTER.dump_python(result, mode="json")
    return dumped


def load_result(data: Any) -> Result:
    """Read back a dumped result (cells come back as their JSON types: str, int, float...)."""
    return _RESULT_ADAPTER.validate_python(data)
