"""The fleet at one round, GPU by GPU: planner input + plan -> `FleetSnapshot`. Pure.

The autoscaler's history recorder and the `fleet` verb both call `fleet_snapshot`, so the map
an operator asks for and the history the report reads are the same picture.

How a GPU's state is decided:
- a deployment's GPUs: `running` once active; `starting` before; `crashing` when starting again
  for a chute with failures since it last ran healthy (the back-off's suspects) or on a pair in
  back-off, i.e. the failure ledger says this is another attempt after a crash;
- a free GPU: `locked` on a locked server, `backed_off` on a server in failure back-off,
  otherwise `idle` with the planner's reason: the server's rejection (low disk, pulls busy...),
  `unverified` for a GPU the validator has not verified, `placing` for GPUs this round's plan
  puts a chute on, `paused` when the autoscaler did not plan, else `no candidate placed`
  (nothing worth its cost was allowed on this server this round).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gepetto_core.models.history import FleetSnapshot, ServerSlots, SlotRun, SlotState
from gepetto_core.scheduling.backoff import BackoffState, backoff_state
from gepetto_core.scheduling.plan import RoundPlan as Plan
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.rules import Reason
from gepetto_core.scheduling.snapshot import DeploymentView, ServerView, Snapshot

NO_CANDIDATE = "no candidate placed"
UNVERIFIED = "unverified"
PLACING = "placing"
WOULD_PLACE = "would place (shadow)"
PAUSED = "autoscaler paused"


def fleet_snapshot(
    snapshot: Snapshot,
    plan: Plan | None,
    policy: PlanPolicy,
    now: datetime,
    *,
    mode: str,
    deploys: int = 0,
    failed_deploys: int = 0,
) -> FleetSnapshot:
    """`plan` is None when the autoscaler did not plan (paused)."""
    backoff = backoff_state(snapshot.failures, now, policy.backoff)
    placing = (
        {gpu for p in plan.placements for gpu in p.gpu_ids} if plan is not None else set[str]()
    )
    by_server: dict[str, list[DeploymentView]] = {}
    for d in snapshot.deployments:
        by_server.setdefault(d.server_id, []).append(d)
    servers = [
        _server_slots(
            server, by_server.get(server.server_id, []), snapshot, plan, backoff, placing, mode
        )
        for server in sorted(snapshot.servers, key=lambda s: s.name)
    ]
    earning = 0.0
    for d in snapshot.deployments:
        if not d.active:
            continue
        chute = snapshot.chute_by_id.get(d.chute_id)
        m = d.compute_multiplier
        if m is None:
            m = chute.effective_compute_multiplier if chute is not None else 0.0
        earning += m * policy.dollars_per_multiplier_hour
    cost = sum(s.hourly_cost * len(s.gpus) for s in snapshot.servers)
    return FleetSnapshot(
        taken_at=now,
        mode=mode,
        servers=servers,
        earning_per_hour=round(earning, 4),
        cost_per_hour=round(cost, 4),
        expected_value=round(plan.total_value, 4) if plan is not None else 0.0,
        deploys=deploys,
        failed_deploys=failed_deploys,
    )


def _busy_state(d: DeploymentView, backoff: BackoffState) -> SlotState:
    if d.active:
        return SlotState.RUNNING
    if d.chute_id in backoff.suspects or backoff.pair_block(d.chute_id, d.server_id):
        return SlotState.CRASHING
    return SlotState.STARTING


def _idle_reason(server: ServerView, plan: Plan | None) -> tuple[SlotState, str]:
    """The state and reason shared by a server's free, verified GPUs that nothing is placed on."""
    if server.locked:
        return SlotState.LOCKED, Reason.SERVER_LOCKED.value
    if plan is None:
        return SlotState.IDLE, PAUSED
    rejection = plan.server_rejections.get(server.server_id)
    if rejection is not None:
        return SlotState.IDLE, rejection.reason.value
    return SlotState.IDLE, NO_CANDIDATE


def _server_slots(
    server: ServerView,
    deployments: list[DeploymentView],
    snapshot: Snapshot,
    plan: Plan | None,
    backoff: BackoffState,
    placing: set[str],
    mode: str,
) -> ServerSlots:
    runs: list[SlotRun] = []
    held: set[str] = set()
    # In the order of the server's GPUs, so the map's slots follow the physical ones.
    position = {g.gpu_id: i for i, g in enumerate(server.gpus)}

    def first_gpu(d: DeploymentView) -> tuple[int, str]:
        return min((position.get(g, len(position)) for g in d.gpu_ids), default=0), d.deployment_id

    for d in sorted(deployments, key=first_gpu):
        held.update(d.gpu_ids)
        chute = snapshot.chute_by_id.get(d.chute_id)
        name = chute.name if chute is not None and chute.name else d.chute_id[:8]
        count = max(1, len(d.gpu_ids))
        runs.append(SlotRun(state=_busy_state(d, backoff), count=count, chute=name))
    # A GPU row may still name a deployment the snapshot no longer has (being removed): shown
    # as starting with no chute, so the server keeps its real size on the map.
    orphaned = sum(1 for g in server.gpus if g.deployment_id is not None and g.gpu_id not in held)
    if orphaned:
        runs.append(SlotRun(state=SlotState.STARTING, count=orphaned))
    free = [g for g in server.gpus if g.deployment_id is None]
    state, reason = _idle_reason(server, plan)
    if state is SlotState.IDLE and backoff.server_block(server.server_id) is not None:
        state = SlotState.BACKED_OFF
        reason = Reason.SERVER_BACKOFF.value
    counts: dict[tuple[SlotState, str], int] = {}
    for gpu in free:
        key = (state, reason)
        if not gpu.verified:
            key = (SlotState.IDLE, UNVERIFIED)
        elif gpu.gpu_id in placing and state is SlotState.IDLE:
            key = (SlotState.IDLE, WOULD_PLACE if mode == "shadow" else PLACING)
        counts[key] = counts.get(key, 0) + 1
    runs.extend(SlotRun(state=s, count=n, reason=why) for (s, why), n in _in_order(counts.items()))
    return ServerSlots(
        name=server.name or server.server_id[:8],
        gpu_type=server.gpu_type,
        hourly_cost=server.hourly_cost,
        runs=runs,
    )


def _in_order(
    items: Iterable[tuple[tuple[SlotState, str], int]],
) -> list[tuple[tuple[SlotState, str], int]]:
    return sorted(items, key=lambda kv: (-kv[1], kv[0][1]))
