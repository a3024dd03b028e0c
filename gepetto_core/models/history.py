"""Fleet history: what every GPU of every server was doing at one autoscaler round.

One `FleetSnapshot` per recorded round (at most one a minute), stored as one row of
`gepetto_fleet_history`. Per server the GPUs are kept run-length encoded (`SlotRun`: so many
GPUs in one state, for one chute or one reason), which keeps a 100-server row near 3 kB before
PostgreSQL compresses it. The same model is the `fleet` verb's view and the renderers' input.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class SlotState(StrEnum):
    """What one GPU slot is doing, as the fleet map colours it."""

    RUNNING = "running"  # an active instance
    STARTING = "starting"  # a deployment not active yet
    CRASHING = "crashing"  # starting again after failures since its chute last ran healthy
    BACKED_OFF = "backed_off"  # idle on a server in failure back-off
    IDLE = "idle"  # idle, with the planner's reason
    LOCKED = "locked"  # idle on a server an operator locked


# The map's legend order (busy first, then the ways a GPU can be idle).
STATE_ORDER: tuple[SlotState, ...] = tuple(SlotState)
BUSY_STATES = frozenset({SlotState.RUNNING, SlotState.STARTING, SlotState.CRASHING})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlotRun(_Model):
    """`count` adjacent GPUs of a server in one state: one deployment's GPUs (with its chute),
    or idle GPUs with one reason."""

    state: SlotState
    count: int = Field(ge=1)
    chute: str | None = None  # the chute's name for busy GPUs
    reason: str | None = None  # the planner's reason for idle ones


class ServerSlots(_Model):
    name: str
    gpu_type: str = ""
    hourly_cost: float = 0.0  # $ per GPU per hour, as declared
    runs: list[SlotRun] = Field(default_factory=list)

    @property
    def gpus(self) -> int:
        return sum(r.count for r in self.runs)

    def slots(self) -> list[SlotRun]:
        """One entry per GPU, in order (a run of 4 becomes 4 entries of count 1)."""
        return [r.model_copy(update={"count": 1}) for r in self.runs for _ in range(r.count)]

    def count(self, state: SlotState) -> int:
        return sum(r.count for r in self.runs if r.state == state)


class FleetSnapshot(_Model):
    """The fleet at one round, plus what the rounds since the previous snapshot did."""

    taken_at: datetime
    mode: str  # autoscaler mode: active | shadow | paused
    servers: list[ServerSlots] = Field(default_factory=list)
    # Estimated $ per hour the running instances earn (multiplier x $ per multiplier-hour).
    earning_per_hour: float = 0.0
    # $ per hour all GPUs cost, busy or idle, as the operator declared them.
    cost_per_hour: float = 0.0
    # The round's plan: the value of what it placed ($/h over the expected life).
    expected_value: float = 0.0
    # Autoscaler deploy calls since the previous snapshot, and the ones that failed.
    deploys: int = 0
    failed_deploys: int = 0

    def count(self, state: SlotState) -> int:
        return sum(s.count(state) for s in self.servers)

    @property
    def gpus(self) -> int:
        return sum(s.gpus for s in self.servers)

    def idle_by_reason(self) -> dict[str, int]:
        """Idle GPUs (every not-busy state) by reason; locked and backed-off are reasons too."""
        out: dict[str, int] = {}
        for server in self.servers:
            for run in server.runs:
                if run.state in BUSY_STATES:
                    continue
                why = run.reason or run.state.value
                out[why] = out.get(why, 0) + run.count
        return out

    def totals(self) -> FleetTotals:
        return FleetTotals(
            taken_at=self.taken_at,
            mode=self.mode,
            gpus=self.gpus,
            states={s: n for s in STATE_ORDER if (n := self.count(s))},
            idle=self.idle_by_reason(),
            earning_per_hour=self.earning_per_hour,
            cost_per_hour=self.cost_per_hour,
            expected_value=self.expected_value,
            deploys=self.deploys,
            failed_deploys=self.failed_deploys,
        )


class FleetTotals(_Model):
    """A snapshot without its servers: what the report reads (a week of these is light)."""

    taken_at: datetime
    mode: str
    gpus: int
    states: dict[SlotState, int] = Field(default_factory=dict)  # GPUs by state
    idle: dict[str, int] = Field(default_factory=dict)  # not-busy GPUs by reason
    earning_per_hour: float = 0.0
    cost_per_hour: float = 0.0
    expected_value: float = 0.0
    deploys: int = 0
    failed_deploys: int = 0

    def count(self, state: SlotState) -> int:
        return self.states.get(state, 0)


class ReportBucket(_Model):
    """One bar of the report's charts: averages over the snapshots that start in it."""

    start: datetime
    snapshots: int = 0  # 0: no history in this bucket (charts leave a gap)
    running: float = 0.0  # average GPUs
    starting: float = 0.0
    crashing: float = 0.0
    idle: float = 0.0  # every GPU not busy (idle, backed off, locked)
    earning_per_hour: float = 0.0
    cost_per_hour: float = 0.0
    deploys: int = 0
    failed_deploys: int = 0


class FleetReport(_Model):
    """What the fleet earned and wasted over a window, computed from history rows."""

    window: str  # "24h" | "7d"
    start: datetime
    end: datetime
    snapshots: int = 0
    covered_hours: float = 0.0  # hours the history covers (gaps over 5 min are not counted)
    gpu_hours: float = 0.0
    busy_gpu_hours: float = 0.0
    running_gpu_hours: float = 0.0
    earnings: float = 0.0  # estimated $
    cost: float = 0.0  # $
    deploys: int = 0
    failed_deploys: int = 0
    idle_gpu_hours: dict[str, float] = Field(default_factory=dict)  # by reason
    buckets: list[ReportBucket] = Field(default_factory=list)

    @property
    def occupancy(self) -> float:
        return self.busy_gpu_hours / self.gpu_hours if self.gpu_hours else 0.0
