"""A clock that tests (and simulations) move forward: real time plus a shift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class ShiftedClock:
    shift: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, **kw: float) -> None:
        self.shift += timedelta(**kw)
