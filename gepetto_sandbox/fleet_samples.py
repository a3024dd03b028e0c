"""Fixed fleets for the renderers' tests and `bench/bench_render.py`: deterministic
`FleetSnapshot`s with every slot state present, at any size."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gepetto_core.models.history import FleetSnapshot, ServerSlots, SlotRun, SlotState

CHUTES = (
    "llama-3.3-70b",
    "qwen2.5-72b",
    "deepseek-r1",
    "flux-dev",
    "whisper-large",
    "mistral-7b",
    "gemma-27b",
)
REASONS = ("no candidate placed", "unprofitable", "low_disk", "pulls_busy", "unverified")
T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def every_state_server(name: str = "gpu-all") -> ServerSlots:
    """Eight GPUs, one state per slot except idle (two reasons): slot i is in state i."""
    return ServerSlots(
        name=name,
        gpu_type="h200",
        hourly_cost=2.5,
        runs=[
            SlotRun(state=SlotState.RUNNING, count=1, chute="llama-3.3-70b"),
            SlotRun(state=SlotState.STARTING, count=1, chute="qwen2.5-72b"),
            SlotRun(state=SlotState.CRASHING, count=1, chute="flux-dev"),
            SlotRun(state=SlotState.BACKED_OFF, count=1, reason="server_backoff"),
            SlotRun(state=SlotState.IDLE, count=2, reason="unprofitable"),
            SlotRun(state=SlotState.LOCKED, count=2, reason="server_locked"),
        ],
    )


def sample_fleet(
    servers: int = 100, gpus: int = 8, *, seed: int = 7, at: datetime = T0
) -> FleetSnapshot:
    """`servers` servers of `gpus` GPUs, mostly busy, some of each idle kind; the first server
    is `every_state_server`, so every state appears in a fleet of any size."""
    rng = random.Random(seed)
    out = [every_state_server()] if gpus == 8 else []
    for i in range(len(out), servers):
        name = f"gpu-{i:03d}"
        if rng.random() < 0.04:
            out.append(_uniform(name, gpus, SlotState.LOCKED, "server_locked"))
            continue
        if rng.random() < 0.05:
            out.append(_uniform(name, gpus, SlotState.BACKED_OFF, "server_backoff"))
            continue
        runs: list[SlotRun] = []
        left = gpus
        while left > 0:
            size = min(left, rng.choice((1, 1, 2, 2, 4, 8)))
            left -= size
            roll = rng.random()
            if roll < 0.7:
                state = SlotState.RUNNING
            elif roll < 0.8:
                state = SlotState.STARTING
            elif roll < 0.83:
                state = SlotState.CRASHING
            else:
                runs.append(SlotRun(state=SlotState.IDLE, count=size, reason=rng.choice(REASONS)))
                continue
            runs.append(SlotRun(state=state, count=size, chute=rng.choice(CHUTES)))
        out.append(ServerSlots(name=name, gpu_type="h100", hourly_cost=2.0, runs=runs))
    busy = sum(s.count(SlotState.RUNNING) for s in out)
    return FleetSnapshot(
        taken_at=at,
        mode="active",
        servers=out,
        earning_per_hour=round(busy * 1.9, 4),
        cost_per_hour=round(sum(s.gpus * s.hourly_cost for s in out), 4),
        expected_value=3.5,
        deploys=rng.randint(0, 3),
        failed_deploys=rng.randint(0, 1),
    )


def sample_history(
    rounds: int, *, servers: int = 10, every: timedelta = timedelta(minutes=1), start: datetime = T0
) -> list[FleetSnapshot]:
    """`rounds` snapshots `every` apart, each a different draw of the same fleet."""
    return [sample_fleet(servers, seed=k, at=start + k * every) for k in range(rounds)]


def _uniform(name: str, gpus: int, state: SlotState, reason: str) -> ServerSlots:
    return ServerSlots(
        name=name,
        gpu_type="a100",
        hourly_cost=1.2,
        runs=[SlotRun(state=state, count=gpus, reason=reason)],
    )
