"""`execute`: the one entry point of the command layer, for the CLI, Slack and the autoscaler.

    parse (no I/O) -> authorize -> read: the view | mutation: the plan, or (confirmed) apply

Every attempted mutation is audited: a denied one when it is refused, an allowed one when it is
applied (with its result filled in afterwards). Showing a plan changes nothing and is not
audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gepetto_core.commands import (
    actions,
    fleet_views,
    inventory_views,
    operator,
    scaling_views,
)
from gepetto_core.commands.actions import ActionPlan
from gepetto_core.commands.context import CommandContext, ProgressSink
from gepetto_core.commands.parser import ParsedCommand, parse
from gepetto_core.commands.registry import Caller, VerbSpec, authorize, spec_for
from gepetto_core.errors import GepettoError, PermissionDeniedError
from gepetto_core.runtime import Runtime
from gepetto_core.views import Composite, FleetMap, Message, PlanView, ReportView, Result, Table

Reader = Callable[[CommandContext], Awaitable[Result]]
Planner = Callable[[CommandContext], Awaitable[ActionPlan]]
Applier = Callable[[CommandContext, ActionPlan], Awaitable[Result]]


async def _help(ctx: CommandContext) -> Result:
    return operator.help_view(ctx)


async def _recycle_preview(ctx: CommandContext) -> Result:
    report = await ctx.rt.reconciler.run_once(dry_run=True)
    return actions.recycle_plan_view(report, dry_run=True)


READERS: dict[str, Reader] = {
    "help": _help,
    "nodes": inventory_views.nodes_view,
    "pods": inventory_views.pods_view,
    "insts": inventory_views.insts_view,
    "chutes": scaling_views.chutes_view,
    "scales": scaling_views.scales_view,
    "why": scaling_views.why_view,
    "recycle --dry-run": _recycle_preview,
    "backoff list": operator.backoff_list,
    "autoscaler status": operator.autoscaler_status,
    "audit": operator.audit_view,
    "fleet": fleet_views.fleet_view,  # #26
    "report": fleet_views.report_view,  # #26
}

MUTATIONS: dict[str, tuple[Planner, Applier]] = {
    "deploy": (actions.plan_deploy, actions.apply_deploy),
    "undeploy": (actions.plan_undeploy, actions.apply_undeploy),
    "undeploy --all-on": (actions.plan_undeploy, actions.apply_undeploy),
    "recycle": (actions.plan_recycle, actions.apply_recycle),
    "backoff clear": (operator.plan_backoff_clear, operator.apply_backoff_clear),
    "autoscaler pause": (operator.plan_autoscaler, operator.apply_autoscaler),
    "autoscaler resume": (operator.plan_autoscaler, operator.apply_autoscaler),
    "autoscaler shadow": (operator.plan_autoscaler, operator.apply_autoscaler),
    "lock": (operator.plan_lock, operator.apply_lock),
    "unlock": (operator.plan_lock, operator.apply_lock),
}


def summarize(result: Result) -> str:
    """A short line for the audit log's result column."""
    if isinstance(result, Message):
        return f"{result.level}: {result.text}"[:500]
    if isinstance(result, Table):
        return f"{result.title} ({len(result.rows)} rows)"[:500]
    if isinstance(result, PlanView):
        return result.title[:500]
    if isinstance(result, Composite):
        return "; ".join(summarize(item) for item in result.items)[:500]
    if isinstance(result, FleetMap | ReportView):  # #26 (reads; never audited in practice)
        return result.title[:500]
    return f"{result.title}: step {result.current}/{len(result.steps)}"[:500]


async def _audit(
    ctx: CommandContext,
    *,
    allowed: bool,
    arguments: dict[str, Any],
    result: str | None = None,
    approvals: list[Any] | None = None,
    message_link: str | None = None,
) -> int:
    return await ctx.rt.state.add_audit(
        actor=ctx.caller.actor,
        source=ctx.caller.source,
        verb=ctx.spec.key,
        arguments=arguments,
        allowed=allowed,
        result=result,
        approvals=approvals,
        message_link=message_link,
    )


def _arguments(command: ParsedCommand) -> dict[str, Any]:
    """The command's options in a JSON-safe form (durations as seconds)."""
    out: dict[str, Any] = {}
    for key, value in command.opts.items():
        if value is None or value is False:
            continue
        out[key] = value.total_seconds() if hasattr(value, "total_seconds") else value
    return out


def _check_approval(ctx: CommandContext, approved_by: str | None) -> None:
    """Two-person rule for `approval` verbs from Slack (the CLI admin acts alone)."""
    if ctx.spec.policy != "approval" or ctx.caller.source == "cli":
        return
    if approved_by is None:
        raise PermissionDeniedError(f"`{ctx.spec.key}` needs approval by a second person")
    if approved_by == ctx.caller.actor:
        raise PermissionDeniedError("the approver must be someone other than the requester")


async def execute(
    command: str | Sequence[str] | ParsedCommand,
    caller: Caller,
    runtime: Runtime,
    *,
    confirmed: bool = False,
    approved_by: str | None = None,
    progress: ProgressSink | None = None,
    poll_seconds: float = 1.0,
    message_link: str | None = None,
) -> Result:
    """Run one command for `caller`. A mutation returns its PlanView unless `confirmed`; then it
    is applied and its outcome returned. Raises GepettoError subclasses (UsageError for bad
    input, PermissionDeniedError, NotFoundError, ...) with one-line messages."""
    parsed = command if isinstance(command, ParsedCommand) else parse(command)
    spec: VerbSpec = spec_for(parsed)
    ctx = CommandContext(
        runtime, caller, parsed, spec, progress=progress, poll_seconds=poll_seconds
    )
    try:
        authorize(caller, spec, runtime.settings.roles)
        if confirmed:
            _check_approval(ctx, approved_by)
    except PermissionDeniedError as e:
        if spec.mutation:
            await _audit(
                ctx,
                allowed=False,
                arguments=_arguments(parsed),
                result=f"denied: {e}",
                message_link=message_link,
            )
        raise
    if not spec.mutation:
        return await READERS[spec.key](ctx)
    planner, applier = MUTATIONS[spec.key]
    plan = await planner(ctx)
    if not confirmed:
        facts = {**plan.view.facts, "policy": spec.policy}
        return plan.view.model_copy(update={"facts": facts})
    audit_id = await _audit(
        ctx,
        allowed=True,
        arguments={**_arguments(parsed), **plan.arguments},
        approvals=[approved_by] if approved_by else None,
        message_link=message_link,
    )
    try:
        result = await applier(ctx, plan)
    except GepettoError as e:
        await runtime.state.finish_audit(audit_id, f"failed: {e}"[:500])
        raise
    await runtime.state.finish_audit(audit_id, summarize(result))
    return result
