"""`chutes`, `scales` and `why`: what the planner finds worth deploying where.

All three read the same planning snapshot (`services.planning_input`) the autoscaler uses, so
what an operator sees is what the autoscaler would decide on.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Sequence

from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.resolve import resolve_chute, resolve_server
from gepetto_core.errors import NotFoundError
from gepetto_core.scheduling import (
    PairRank,
    PlanPolicy,
    Snapshot,
    explain,
    plan_round,
    rank_chutes,
    rank_pairs,
)
from gepetto_core.scheduling.rules import allowance
from gepetto_core.services.planning_input import PlanningInput, load_snapshot
from gepetto_core.views import Cell, Column, ColumnKind, Message, Table

K = ColumnKind

CHUTE_COLUMNS = [
    Column(key="chute_id", title="chute_id", kind=K.ID),
    Column(key="name", title="name"),
    Column(key="gain", title="expected gain", kind=K.MONEY),
    Column(key="multiplier", title="multiplier", kind=K.FLOAT),
    Column(key="p_survive", title="survives 1h", kind=K.PERCENT),
    Column(key="ours", title="ours", kind=K.INT),
    Column(key="instances", title="instances", kind=K.INT),
    Column(key="allowance", title="room", kind=K.INT),
    Column(key="gpus", title="supported GPUs"),
    Column(key="gpu_count", title="gpu_count", kind=K.INT),
    Column(key="scalable", title="scalable", kind=K.BOOL),
    Column(key="why_not", title="why not"),
]


def value_unit(policy: PlanPolicy) -> tuple[str, str]:
    """The `value` column's title (with its unit) and what the number is, for the footer
    (the expected value of `scheduling/value.py`, in $/h)."""
    # kappa (cost_weight): 1 deducts the GPUs' cost, 0 treats it as sunk.
    if policy.cost_weight == 0:
        gpu_cost = "nothing for its GPUs (their cost is sunk)"
    elif policy.cost_weight == 1:
        gpu_cost = "its GPUs' cost"
    else:
        gpu_cost = f"{policy.cost_weight:g} x its GPUs' cost"
    return "value $/h", (
        "value is the $/h one more instance is expected to earn over its life, "
        f"less {gpu_cost} and the expected cost of a failed start"
    )


def scale_columns(policy: PlanPolicy) -> list[Column]:
    value_title, _ = value_unit(policy)
    return [
        Column(key="chute", title="chute"),
        Column(key="chute_id", title="chute_id", kind=K.ID),
        Column(key="server", title="server"),
        Column(key="server_id", title="server_id", kind=K.ID),
        Column(key="gpu", title="gpu"),
        Column(key="gpu_count", title="gpus", kind=K.INT),
        Column(key="cost", title="cost", kind=K.MONEY),
        Column(key="value", title=value_title, kind=K.FLOAT),
        Column(key="fits", title="fits now", kind=K.BOOL),
        Column(key="why_not", title="why not"),
    ]


async def planning_input(ctx: CommandContext) -> tuple[PlanningInput, float | None]:
    snaps, age = await ctx.snapshots()
    data = await load_snapshot(ctx.rt.inventory, ctx.rt.state, snaps, ctx.clock())
    return data, age


def _check_gpu(snapshot: Snapshot, gpu: str, *, servers: bool) -> None:
    known = {s.gpu_type for s in snapshot.servers} if servers else set()
    known |= {g for c in snapshot.chutes for g in c.supported_gpus}
    if gpu not in known:
        raise NotFoundError("GPU type", gpu, difflib.get_close_matches(gpu, sorted(known), n=3))


async def chutes_view(ctx: CommandContext) -> Table:
    data, age = await planning_input(ctx)
    snapshot = data.snapshot
    gpu = ctx.command.opts.get("gpu")
    if gpu:
        _check_gpu(snapshot, gpu, servers=False)
    ranked = rank_chutes(snapshot, ctx.policy, ctx.clock(), gpu, ctx.command.opts.get("limit"))
    rows: list[dict[str, Cell]] = []
    for r in ranked:
        chute = snapshot.chute_by_id[r.chute_id]
        room, _ = allowance(chute, snapshot)
        rows.append(
            {
                "chute_id": r.chute_id,
                "name": r.name,
                "gain": round(r.score, 4),
                "multiplier": round(r.multiplier, 4),
                "p_survive": round(r.p_survive, 4),
                "ours": snapshot.our_instances(r.chute_id),
                "instances": chute.instance_count,
                "allowance": room,
                "gpus": ",".join(sorted(chute.supported_gpus)),
                "gpu_count": r.gpu_count,
                "scalable": r.eligible,
                "why_not": r.reason,
            }
        )
    where = f" supporting {gpu}" if gpu else ""
    eligible = sum(1 for r in ranked if r.eligible)
    return Table(
        title=f"Chutes{where} by expected gain ({eligible} of {len(ranked)} shown are scalable)",
        columns=CHUTE_COLUMNS,
        rows=rows,
        data_age_seconds=age,
        note="value model: expected; gain is $/h per instance before GPU cost",
    )


async def scales_view(ctx: CommandContext) -> Table:
    data, age = await planning_input(ctx)
    snapshot = data.snapshot
    opts = ctx.command.opts
    gpu = opts.get("gpu")
    if gpu:
        _check_gpu(snapshot, gpu, servers=True)
    server_id = (
        resolve_server(data.servers, opts["server"]).server_id if opts.get("server") else None
    )
    pairs = rank_pairs(snapshot, ctx.policy, ctx.clock(), gpu, server_id, opts.get("limit"))
    return scales_table(pairs, ctx.policy, age)


def scales_table(pairs: Sequence[PairRank], policy: PlanPolicy, age: float | None) -> Table:
    rows: list[dict[str, Cell]] = [
        {
            "chute": p.chute_name,
            "chute_id": p.chute_id,
            "server": p.server_name,
            "server_id": p.server_id,
            "gpu": p.gpu_type,
            "gpu_count": p.gpu_count,
            "cost": round(p.hourly_cost, 4),
            "value": round(p.value, 4),
            "fits": p.fits_now,
            "why_not": p.reason,
        }
        for p in pairs
    ]
    return Table(
        title=f"Best chute x server combinations ({sum(p.fits_now for p in pairs)} fit now)",
        columns=scale_columns(policy),
        rows=rows,
        data_age_seconds=age,
        note=f"value model: expected; {value_unit(policy)[1]}; cost is $/h for the chute's GPUs",
    )


async def why_view(ctx: CommandContext) -> Message:
    data, age = await planning_input(ctx)
    chute = resolve_chute(data.chutes, ctx.command.opts["chute"])
    now = ctx.clock()
    plan = plan_round(data.snapshot, ctx.policy, now, random.Random(0))
    explanation = explain(data.snapshot, plan, chute.chute_id)
    mode = await ctx.rt.state.get_autoscaler_mode()
    details = [str(explanation)]
    if explanation.best_server_id:
        server = data.snapshot.server_by_id.get(explanation.best_server_id)
        if server is not None:
            details.append(f"best server: {server.name}")
    details.append(f"autoscaler mode: {mode.mode}")
    if age is not None:
        details.append(f"validator data {round(age)} s old")
    verdicts = {
        "placed": "would be placed",
        "skipped": "would be skipped",
        "never_eligible": "is not eligible",
    }
    return Message(
        level="info",
        text=f"{explanation.name} {verdicts[explanation.verdict]} this round",
        details=details,
    )
