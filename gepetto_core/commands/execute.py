"""`execute`: the one entry point of the command layer, for the CLI, Slack and the autoscaler.

    parse (no I/O) -> authorize -> read: its view model | mutation: the plan, or (confirmed) apply

Every attempted mutation is audited: a denied one when it is refused, an allowed one when it is
applied (with its result filled in afterwards). Showing a plan changes nothing and is not
audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gepetto_core.commands.arguments import ParsedCommand
from gepetto_core.commands.context import CommandContext, ProgressSink
from gepetto_core.commands.registry import Caller, authorize
from gepetto_core.commands.verbs import Read, VerbSpec, parse, spec_for
from gepetto_core.errors import GepettoError, PermissionDeniedError
from gepetto_core.views import Composite, FleetMap, Message, PlanView, ReportView, Result, Table
from gepetto_core.wiring import Runtime


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
    spec: VerbSpec,
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
        verb=spec.key,
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


def _check_approval(caller: Caller, spec: VerbSpec, approved_by: str | None) -> None:
    """Two-person rule for `approval` verbs from Slack (the CLI admin acts alone)."""
    if spec.policy != "approval" or caller.source == "cli":
        return
    if approved_by is None:
        raise PermissionDeniedError(f"`{spec.key}` needs approval by a second person")
    if approved_by == caller.actor:
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
    ctx = CommandContext(runtime, caller, parsed, progress=progress, poll_seconds=poll_seconds)
    try:
        authorize(caller, spec, runtime.settings.roles)
        if confirmed:
            _check_approval(caller, spec, approved_by)
    except PermissionDeniedError as e:
        if spec.mutation:
            await _audit(
                ctx,
                spec,
                allowed=False,
                arguments=_arguments(parsed),
                result=f"denied: {e}",
                message_link=message_link,
            )
        raise
    action = spec.does
    if isinstance(action, Read):
        return await action.run(ctx)
    plan = await action.plan(ctx)
    if not confirmed:
        facts = {**plan.view.facts, "policy": spec.policy}
        return plan.view.model_copy(update={"facts": facts})
    audit_id = await _audit(
        ctx,
        spec,
        allowed=True,
        arguments={**_arguments(parsed), **plan.arguments},
        approvals=[approved_by] if approved_by else None,
        message_link=message_link,
    )
    try:
        result = await action.apply(ctx, plan)
    except GepettoError as e:
        await runtime.state.finish_audit(audit_id, f"failed: {e}"[:500])
        raise
    await runtime.state.finish_audit(audit_id, summarize(result))
    return result
