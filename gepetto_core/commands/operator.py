"""Operator verbs shared with Slack: `backoff`, `autoscaler`, `lock`/`unlock`, `audit`.

Mutations here follow the same plan/apply split as `actions.py`.
"""

from __future__ import annotations

import json
from datetime import datetime

from gepetto_core.commands.actions import ActionPlan
from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.resolve import chute_label, resolve_chute, resolve_server
from gepetto_core.errors import NotFoundError
from gepetto_core.scheduling import backoff_state
from gepetto_core.scheduling.backoff import BackoffState, Cooldown
from gepetto_core.services.ledger import load_failure_records
from gepetto_core.views import Cell, Column, ColumnKind, Message, PlanView, Table

K = ColumnKind

BACKOFF_COLUMNS = [
    Column(key="scope", title="scope"),
    Column(key="chute", title="chute"),
    Column(key="server", title="server"),
    Column(key="until", title="until", kind=K.DATETIME),
    Column(key="left", title="left", kind=K.DURATION),
    Column(key="failures", title="failures", kind=K.INT),
]

AUDIT_COLUMNS = [
    Column(key="at", title="at", kind=K.DATETIME),
    Column(key="actor", title="actor"),
    Column(key="source", title="source"),
    Column(key="verb", title="verb"),
    Column(key="arguments", title="arguments"),
    Column(key="allowed", title="allowed", kind=K.BOOL),
    Column(key="result", title="result"),
]


# --- back-off ------------------------------------------------------------------------------


async def _backoff_state(ctx: CommandContext) -> BackoffState:
    now = ctx.clock()
    records = await load_failure_records(ctx.rt.state)
    return backoff_state(records, now, ctx.policy.backoff)


def _cooldowns(state: BackoffState) -> list[tuple[str | None, str | None, Cooldown]]:
    out: list[tuple[str | None, str | None, Cooldown]] = []
    out += [(c, s, cd) for (c, s), cd in state.pairs.items()]
    out += [(c, None, cd) for c, cd in state.chutes.items()]
    out += [(None, s, cd) for s, cd in state.servers.items()]
    return sorted(out, key=lambda item: item[2].until, reverse=True)


async def backoff_list(ctx: CommandContext) -> Table:
    state = await _backoff_state(ctx)
    chutes = {c.chute_id: chute_label(c, c.chute_id) for c in await ctx.rt.inventory.list_chutes()}
    servers = {s.server_id: s.name for s in await ctx.rt.inventory.list_servers()}
    now = ctx.clock()
    rows: list[dict[str, Cell]] = [
        {
            "scope": cd.scope,
            "chute": chutes.get(c, c) if c else None,
            "server": servers.get(s, s) if s else None,
            "until": cd.until,
            "left": cd.until - now,
            "failures": cd.failures,
        }
        for c, s, cd in _cooldowns(state)
    ]
    return Table(
        title=f"Failure back-off ({len(rows)} active)",
        columns=BACKOFF_COLUMNS,
        rows=rows,
        data_label=None,  # from gepetto's own ledger, not from the validator
    )


async def plan_backoff_clear(ctx: CommandContext) -> ActionPlan:
    opts = ctx.command.opts
    chute = (
        resolve_chute(await ctx.rt.inventory.list_chutes(), opts["chute"])
        if opts.get("chute")
        else None
    )
    server = (
        resolve_server(await ctx.rt.inventory.list_servers(), opts["server"])
        if opts.get("server")
        else None
    )
    state = await _backoff_state(ctx)
    hit = [
        cd
        for c, s, cd in _cooldowns(state)
        if (chute is None or c == chute.chute_id) and (server is None or s == server.server_id)
    ]
    scope = (
        " and ".join(
            part
            for part in (
                f"chute {chute_label(chute, chute.chute_id)}" if chute else "",
                f"server {server.name}" if server else "",
            )
            if part
        )
        or "every chute and server"
    )
    steps = [f"forgive the recorded failures of {scope}"] + [f"lift: {cd.reason}" for cd in hit]
    return ActionPlan(
        PlanView(
            title=f"Clear back-off for {scope}",
            steps=steps,
            facts={"active_backoffs": len(hit)},
        ),
        {
            "chute_id": chute.chute_id if chute else None,
            "server_id": server.server_id if server else None,
        },
    )


async def apply_backoff_clear(ctx: CommandContext, plan: ActionPlan) -> Message:
    count = await ctx.rt.state.forgive(
        ctx.clock(),
        ctx.caller.actor,
        chute_id=plan.arguments.get("chute_id"),
        server_id=plan.arguments.get("server_id"),
    )
    return Message(level="success", text=f"forgave {count} recorded failure(s)")


# --- autoscaler mode -----------------------------------------------------------------------


def _mode_text(mode: str, paused_until: datetime | None) -> str:
    if mode == "paused":
        return f"paused until {paused_until:%Y-%m-%d %H:%M} UTC" if paused_until else "paused"
    return mode


async def autoscaler_status(ctx: CommandContext) -> Message:
    mode = await ctx.rt.state.get_autoscaler_mode()
    return Message(
        level="info",
        text=f"autoscaler: {_mode_text(mode.mode, mode.paused_until)}",
        details=[f"set by {mode.updated_by} at {mode.updated_at:%Y-%m-%d %H:%M} UTC"],
    )


_MODE_BY_SUB = {"pause": "paused", "resume": "active", "shadow": "shadow"}
_MODE_MEANING = {
    "paused": "the autoscaler places nothing",
    "active": "the autoscaler places chutes",
    "shadow": "the autoscaler plans and reports but places nothing",
}


async def plan_autoscaler(ctx: CommandContext) -> ActionPlan:
    sub = ctx.command.sub or "status"
    mode = _MODE_BY_SUB[sub]
    duration = ctx.command.opts.get("duration")
    until = ctx.clock() + duration if duration is not None else None
    current = await ctx.rt.state.get_autoscaler_mode()
    step = f"set the autoscaler to {_mode_text(mode, until)}: {_MODE_MEANING[mode]}"
    return ActionPlan(
        PlanView(
            title=f"Autoscaler {sub}",
            steps=[step],
            facts={"now": _mode_text(current.mode, current.paused_until)},
        ),
        {"mode": mode, "paused_until": until.isoformat() if until else None},
    )


async def apply_autoscaler(ctx: CommandContext, plan: ActionPlan) -> Message:
    until_text = plan.arguments.get("paused_until")
    until = datetime.fromisoformat(until_text) if until_text else None
    mode = await ctx.rt.state.set_autoscaler_mode(
        plan.arguments["mode"], ctx.caller.actor, paused_until=until
    )
    return Message(level="success", text=f"autoscaler: {_mode_text(mode.mode, mode.paused_until)}")


# --- lock / unlock -------------------------------------------------------------------------


async def plan_lock(ctx: CommandContext) -> ActionPlan:
    lock = ctx.command.verb == "lock"
    server = resolve_server(await ctx.rt.inventory.list_servers(), ctx.command.opts["server"])
    running = len(await ctx.rt.inventory.list_deployments(server.server_id))
    if lock:
        step = f"lock {server.name}: deploys (manual and automatic) skip it"
        warnings = (
            [f"{running} running deployment(s) stay; undeploy them separately"] if running else []
        )
    else:
        step = f"unlock {server.name}: deploys may use it again"
        warnings = []
    return ActionPlan(
        PlanView(
            title=f"{'Lock' if lock else 'Unlock'} {server.name}",
            steps=[step],
            facts={"server_id": server.server_id, "locked_now": server.locked},
            warnings=warnings,
        ),
        {"server_id": server.server_id, "locked": lock, "name": server.name},
    )


async def apply_lock(ctx: CommandContext, plan: ActionPlan) -> Message:
    args = plan.arguments
    if not await ctx.rt.inventory.set_server_locked(args["server_id"], args["locked"]):
        raise NotFoundError("server", args["name"])
    state = "locked" if args["locked"] else "unlocked"
    return Message(level="success", text=f"{args['name']} is {state}")


# --- audit -------------------------------------------------------------------------------------


async def audit_view(ctx: CommandContext) -> Table:
    opts = ctx.command.opts
    since = ctx.clock() - opts["since"] if opts.get("since") else None
    entries = await ctx.rt.state.list_audit(
        actor=opts.get("user"), since=since, limit=opts["limit"]
    )
    rows: list[dict[str, Cell]] = [
        {
            "at": e.at,
            "actor": e.actor,
            "source": e.source,
            "verb": e.verb,
            "arguments": json.dumps(e.arguments, sort_keys=True, default=str),
            "allowed": e.allowed,
            "result": e.result,
        }
        for e in entries
    ]
    return Table(
        title=f"Audit log ({len(rows)})", columns=AUDIT_COLUMNS, rows=rows, data_label=None
    )
