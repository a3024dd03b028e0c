"""`fleet` and `report` (#26): the fleet map now, and what the fleet earned and wasted.

`fleet` plans a round exactly as `scales`/`why` do (the same planning snapshot, nothing
applied) and maps every GPU with `services.fleet_state`, the function the history recorder
uses; `report` reads the recorded history. Both return view models; the front ends draw them
(terminal grid or PNG in the CLI, a PNG in a Slack thread).
"""

from __future__ import annotations

import random

from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.scaling_views import planning_input
from gepetto_core.scheduling import plan_round
from gepetto_core.services.fleet_report import fleet_report, report_window, summary_lines
from gepetto_core.services.fleet_state import fleet_snapshot
from gepetto_core.views import FleetMap, ReportView


async def fleet_view(ctx: CommandContext) -> FleetMap:
    data, _ = await planning_input(ctx)
    now = ctx.clock()
    mode = (await ctx.rt.state.get_autoscaler_mode()).mode
    plan = (
        None if mode == "paused" else plan_round(data.snapshot, ctx.policy, now, random.Random(0))
    )
    fleet = fleet_snapshot(data.snapshot, plan, ctx.policy, now, mode=mode)
    return FleetMap(title=f"fleet: {len(fleet.servers)} servers, {fleet.gpus} GPUs", fleet=fleet)


async def report_view(ctx: CommandContext) -> ReportView:
    window = str(ctx.command.opts.get("window") or "24h")
    start, end = report_window(window, ctx.clock())
    rows = await ctx.rt.history.totals(start, end)
    report = fleet_report(rows, window, end)
    return ReportView(
        title=f"fleet report, last {window}", report=report, summary=summary_lines(report)
    )
