"""`deploy`, `undeploy` and `recycle`: each a `plan_*` (what will happen and why; changes
nothing) and an `apply_*` (does it). Slack shows the plan with Confirm buttons; the CLI prints it
and asks. Apply re-reads state: what was planned may have changed in between, and the deployer
and reconciler guard against that themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.resolve import (
    chute_label,
    instance_of,
    resolve_chute,
    resolve_deployment,
    resolve_server,
)
from gepetto_core.errors import ClusterNotFoundError, ConflictError, ValidatorError
from gepetto_core.models.cluster import ChuteJobView
from gepetto_core.models.inventory import Deployment
from gepetto_core.models.validator import ValidatorInstance, is_launch_config_version
from gepetto_core.scheduling.reconcile_actions import (
    Action,
    DeleteChute,
    DeleteJob,
    DeleteService,
    MirrorState,
    PurgeInstance,
    RemoveDeployment,
    RemoveServer,
    SaveChute,
    SetInstanceId,
)
from gepetto_core.services.deployer import DeployRequest, DeployStep, placement_problem
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_core.services.sync import ListName
from gepetto_core.views import (
    Cell,
    Column,
    ColumnKind,
    Composite,
    Message,
    PlanView,
    Progress,
    Table,
)

K = ColumnKind
# Pod states that mean the chute will not come up without help.
FATAL_WAITING = frozenset(
    {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"}
)


@dataclass(frozen=True)
class ActionPlan:
    view: PlanView
    # Resolved ids the apply step acts on (also what the audit log records).
    arguments: dict[str, Any] = field(default_factory=dict)


# --- deploy --------------------------------------------------------------------------------


async def plan_deploy(ctx: CommandContext) -> ActionPlan:
    inv = ctx.rt.inventory
    opts = ctx.command.opts
    chute = resolve_chute(await inv.list_chutes(), opts["chute"])
    server = resolve_server(await inv.list_servers(), opts["server"])
    gpus = await inv.list_gpus(server.server_id)
    problem = placement_problem(chute, server, gpus)
    name = chute_label(chute, chute.chute_id)
    if problem:
        raise ConflictError(f"cannot deploy {name} on {server.name}: {problem}")
    free = [g for g in gpus if g.verified and g.deployment_id is None]
    gpu_type = free[0].model_short_ref if free else "?"
    legacy = not is_launch_config_version(chute.chutes_version)
    steps = [
        f"claim {chute.gpu_count} free {gpu_type} GPU(s) on {server.name} ({len(free)} free)",
        "announce the instance to the validator after start (chutes < 0.3.0)"
        if legacy
        else "get a launch config from the validator (423 means it wants no more instances)",
        f"create the Service and Job for {name} on {server.name}",
        "wait for the pod to run and the instance to be verified and active",
    ]
    running = [
        d for d in await inv.list_deployments(server.server_id) if d.chute_id == chute.chute_id
    ]
    warnings = [f"{len(running)} instance(s) of {name} already on {server.name}"] if running else []
    return ActionPlan(
        PlanView(
            title=f"Deploy {name} on {server.name}",
            steps=steps,
            facts={
                "chute_id": chute.chute_id,
                "server_id": server.server_id,
                "gpu": gpu_type,
                "gpu_count": chute.gpu_count,
                "cost_per_hour": round(server.hourly_cost * chute.gpu_count, 4),
                "version": chute.version,
            },
            warnings=warnings,
        ),
        {"chute_id": chute.chute_id, "server_id": server.server_id},
    )


_STEP_INDEX = {
    DeployStep.CLAIMED: 1,
    DeployStep.LAUNCH_CONFIG: 2,
    DeployStep.SERVICE_AND_JOB: 4,
    DeployStep.RECORDED: 4,
    DeployStep.ANNOUNCED: 4,
}


async def _remote_instance(ctx: CommandContext, row: Deployment) -> ValidatorInstance | None:
    api = ctx.rt.validators.get(row.validator)
    if api is None:
        return None
    try:
        listed = await api.stream_instances()
    except ValidatorError:
        return None  # a blip: look again next time
    return instance_of(row, listed.items)


def pod_failure(job: ChuteJobView) -> str | None:
    if job.status.failed:
        return "the Job failed"
    for pod in job.pods:
        if pod.phase == "Failed":
            return f"pod {pod.name} failed"
        state = pod.state
        if state is not None and state.state == "waiting" and state.reason in FATAL_WAITING:
            return f"pod {pod.name}: {state.reason}"
    return None


async def _wait_ready(ctx: CommandContext, row: Deployment, progress: Progress) -> Progress:
    """Follow the deployment to active: pod running -> instance verified -> active."""
    timeout = ctx.command.opts["timeout"].total_seconds()
    try:
        async with asyncio.timeout(timeout):
            while True:
                current = await ctx.rt.inventory.get_deployment(row.deployment_id)
                if current is None:
                    return progress.model_copy(
                        update={"failed": True, "detail": "the deployment was removed"}
                    )
                with contextlib.suppress(ClusterNotFoundError):
                    job = await ctx.rt.cluster.get_chute_job(row.deployment_id)
                    failure = pod_failure(job)
                    if failure:
                        return progress.model_copy(update={"failed": True, "detail": failure})
                    if job.ready and progress.current < 5:
                        progress = Progress(current=5, detail="pod running")
                        await ctx.report(progress)
                remote = await _remote_instance(ctx, current)
                verified = current.verified_at is not None or bool(remote and remote.verified)
                active = current.active or bool(remote and remote.active)
                if verified and progress.current < 6:
                    progress = Progress(current=6, detail="instance verified")
                    await ctx.report(progress)
                if active and verified:
                    return Progress(current=7, detail=f"deployment {row.deployment_id} is active")
                await asyncio.sleep(ctx.poll_seconds)
    except TimeoutError:
        return progress.model_copy(
            update={"detail": f"not active after {round(timeout)} s; it stays deployed"}
        )


async def apply_deploy(ctx: CommandContext, plan: ActionPlan) -> Composite:
    args = plan.arguments
    last = Progress(current=0)

    async def on_step(step: DeployStep, detail: str) -> None:
        nonlocal last
        last = Progress(current=_STEP_INDEX[step], detail=detail)
        await ctx.report(last)

    request = DeployRequest(args["chute_id"], args["server_id"], requested_by=ctx.caller.actor)
    try:
        result = await ctx.rt.deployer.deploy(request, on_step)
    except BaseException:
        if last.current < len(last.steps):
            await ctx.report(last.model_copy(update={"failed": True}))
        raise
    row = result.deployment
    progress = Progress(current=4, detail=f"job chute-{row.deployment_id} created")
    if not ctx.command.opts.get("no_wait"):
        progress = await _wait_ready(ctx, row, progress)
        await ctx.report(progress)
    if progress.finished:
        message = Message(level="success", text=f"deployment {row.deployment_id} is active")
    elif progress.failed:
        message = Message(
            level="error",
            text=f"deployment {row.deployment_id} did not come up: {progress.detail}",
            details=["the reconciler (recycle) removes it; or `undeploy -i` it now"],
        )
    else:
        message = Message(
            level="warning" if not ctx.command.opts.get("no_wait") else "success",
            text=f"deployment {row.deployment_id} created; {progress.detail}",
            details=[f"{len(result.gpus)} GPU(s) claimed; follow it with `insts`"],
        )
    return Composite(items=[progress, message])


# --- undeploy ------------------------------------------------------------------------------


async def plan_undeploy(ctx: CommandContext) -> ActionPlan:
    inv = ctx.rt.inventory
    opts = ctx.command.opts
    deployments = await inv.list_deployments()
    servers = {s.server_id: s for s in await inv.list_servers()}
    chutes = {c.chute_id: c for c in await inv.list_chutes()}
    if opts.get("all_on"):
        server = resolve_server(list(servers.values()), opts["all_on"])
        targets = [d for d in deployments if d.server_id == server.server_id]
        title = f"Undeploy everything on {server.name} ({len(targets)} deployment(s))"
    else:
        targets = [resolve_deployment(deployments, opts["id"])]
        title = f"Undeploy {targets[0].deployment_id}"
    steps = []
    for d in targets:
        chute = chutes.get(d.chute_id)
        server_name = servers[d.server_id].name if d.server_id in servers else d.server_id
        state = "active" if d.active else "not active"
        steps.append(
            f"remove {d.deployment_id} ({chute_label(chute, d.chute_id)} on {server_name}, "
            f"{state}): free its GPUs, purge the validator instance, delete Job and Service"
        )
    warnings = (
        [f"{sum(d.active for d in targets)} active instance(s) stop earning"]
        if any(d.active for d in targets)
        else []
    )
    return ActionPlan(
        PlanView(title=title, steps=steps, facts={"deployments": len(targets)}, warnings=warnings),
        {"deployment_ids": [d.deployment_id for d in targets]},
    )


UNDEPLOY_COLUMNS = [
    Column(key="deployment_id", title="deployment_id", kind=K.ID),
    Column(key="removed", title="removed", kind=K.BOOL),
    Column(key="warnings", title="warnings"),
]


async def apply_undeploy(ctx: CommandContext, plan: ActionPlan) -> Composite | Message:
    ids: list[str] = plan.arguments["deployment_ids"]
    if not ids:
        return Message(level="info", text="nothing to undeploy")
    reason = f"operator undeploy by {ctx.caller.actor}"
    rows: list[dict[str, Cell]] = []
    for deployment_id in ids:
        result = await ctx.rt.deployer.undeploy(deployment_id, reason)
        rows.append(
            {
                "deployment_id": deployment_id,
                "removed": result.was_present,
                "warnings": "; ".join(result.warnings) or None,
            }
        )
    table = Table(title="Undeployed", columns=UNDEPLOY_COLUMNS, rows=rows, data_label=None)
    gone = sum(1 for r in rows if r["removed"])
    level = "success" if all(not r["warnings"] for r in rows) else "warning"
    return Composite(items=[table, Message(level=level, text=f"removed {gone} of {len(ids)}")])


# --- recycle -------------------------------------------------------------------------------


def describe_action(action: Action) -> tuple[str, str, str]:
    """(kind, target, reason) of one reconcile action, for people."""
    match action:
        case RemoveDeployment(deployment_id=d, reason=r):
            return "remove deployment", d, r
        case PurgeInstance(instance_id=i, chute_id=c, reason=r):
            return "purge instance", f"{i} (chute {c})", r
        case DeleteJob(job_name=n, reason=r):
            return "delete job", n, r
        case DeleteService(name=n, reason=r):
            return "delete service", n, r
        case DeleteChute(chute_id=c, reason=r):
            return "delete chute", c, r
        case RemoveServer(server_id=s, reason=r):
            return "remove server", s, r
        case SaveChute(chute_id=c, version=v, reason=r):
            return "save chute", f"{c} @ {v[:8]}", r
        case MirrorState(deployment_id=d, reason=r):
            return "mirror state", d, r
        case SetInstanceId(deployment_id=d, instance_id=i, reason=r):
            return "set instance id", f"{d} -> {i}", r
    return type(action).__name__, "", ""


def recycle_plan_view(report: ReconcileReport, *, dry_run: bool) -> PlanView:
    """The plan, one step per action; a removal the cluster's delete preflight would veto now
    says so ("— deferred: <why>"): it would wait, not happen, this pass."""
    steps = []
    for index, action in enumerate(report.plan.actions):
        kind, target, reason = describe_action(action)
        veto = report.verdict(index)
        steps.append(f"{kind} {target}: {reason}" + (f" — deferred: {veto}" if veto else ""))
    destructive = len(report.plan.destructive)
    title = "Recycle" + (" (dry run: nothing changed)" if dry_run else "")
    warnings = list(report.plan.problems)
    if not report.plan.complete:
        warnings.append("incomplete information: removals are held back this pass")
    return PlanView(
        title=title,
        steps=steps or ["nothing to do: database, cluster and validator agree"],
        facts={"actions": len(report.plan.actions), "removals": destructive}
        | ({"deferred": len(report.verdicts)} if report.verdicts else {}),
        warnings=warnings,
    )


async def preview_recycle(ctx: CommandContext) -> PlanView:
    """`recycle --dry-run`: a read, open to viewers, that shows the plan and offers nothing."""
    report = await ctx.rt.reconciler.run_once(dry_run=True)
    return recycle_plan_view(report, dry_run=True)


async def plan_recycle(ctx: CommandContext) -> ActionPlan:
    report = await ctx.rt.reconciler.run_once(dry_run=True)
    view = recycle_plan_view(report, dry_run=bool(ctx.command.opts.get("dry_run")))
    if not report.plan.actions:
        view = view.model_copy(update={"steps": []})
    return ActionPlan(view, {"force": bool(ctx.command.opts.get("force"))})


RECYCLE_COLUMNS = [
    Column(key="kind", title="action"),
    Column(key="target", title="target"),
    Column(key="reason", title="why"),
    Column(key="ok", title="ok", kind=K.BOOL),
    Column(key="detail", title="detail"),
]


async def apply_recycle(ctx: CommandContext, plan: ActionPlan) -> Composite:
    report = await ctx.rt.reconciler.run_once(force=bool(plan.arguments.get("force")))
    rows: list[dict[str, Cell]] = []
    for result in report.results:
        kind, target, reason = describe_action(result.action)
        rows.append(
            {
                "kind": kind,
                "target": target,
                "reason": reason,
                "ok": result.ok,
                "detail": result.detail,
            }
        )
    _, age = await ctx.snapshots([ListName.INSTANCES, ListName.CHUTES], required=False)
    table = Table(
        title=f"Recycle: {len(rows)} action(s), {len(report.failures)} failed",
        columns=RECYCLE_COLUMNS,
        rows=rows,
        data_age_seconds=age,
    )
    items: list[Any] = [table]
    if report.plan.problems:
        items.append(Message(level="warning", text="held back", details=list(report.plan.problems)))
    if report.failures:
        items.append(Message(level="error", text=f"{len(report.failures)} action(s) failed"))
    return Composite(items=items)
