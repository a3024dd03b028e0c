"""What a command handler works with: the runtime, the caller, the clocks, and validator
snapshots that are fresh enough (synced on demand when they are missing or old)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gepetto_core.clock import utcnow
from gepetto_core.commands.arguments import ParsedCommand
from gepetto_core.commands.registry import Caller
from gepetto_core.errors import ValidatorUnavailableError
from gepetto_core.scheduling import PlanPolicy
from gepetto_core.services.planning_input import PLANNING_LISTS, data_age, plan_policy
from gepetto_core.services.sync import ListName, ValidatorSnapshot
from gepetto_core.views import Progress
from gepetto_core.wiring import Runtime

ProgressSink = Callable[[Progress], Awaitable[None]]


@dataclass
class CommandContext:
    rt: Runtime
    caller: Caller
    command: ParsedCommand
    progress: ProgressSink | None = None
    clock: Callable[[], datetime] = utcnow
    # The sync service's clock (seconds since the epoch), for list ages.
    wall: Callable[[], float] = time.time
    # How often to look while waiting for a deploy to become ready.
    poll_seconds: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def policy(self) -> PlanPolicy:
        return plan_policy(self.rt.settings)

    async def report(self, progress: Progress) -> None:
        if self.progress is not None:
            await self.progress(progress)

    async def snapshots(
        self, lists: Sequence[ListName] = PLANNING_LISTS, *, required: bool = True
    ) -> tuple[Mapping[str, ValidatorSnapshot], float | None]:
        """Validator snapshots and the age of `lists` in them. Syncs first when a list was never
        fetched or is older than two sync intervals. `required`: fail when the data is missing
        (a table without it would be empty and look like the truth)."""
        limit = 2 * self.rt.settings.sync_interval_seconds
        age = data_age(self.rt.sync.snapshots.values(), self.wall(), lists)
        if age is None or age > limit:
            await self.rt.sync.sync_all()
        snaps = self.rt.sync.snapshots
        age = data_age(snaps.values(), self.wall(), lists)
        if age is None and required:
            errors = sorted(
                {
                    error
                    for snap in snaps.values()
                    for name, error in snap.errors().items()
                    if name in lists
                }
            )
            detail = errors[0] if errors else "no data yet"
            raise ValidatorUnavailableError(f"validator data unavailable: {detail}")
        return snaps, age
