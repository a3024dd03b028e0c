"""The composition root: the `gepetto` console script (`main`), which adds to the core's command
line the commands that join the core with the Slack bot and the sandboxes, and `gepetto serve`,
the long-running process in a miner's control plane (the core, the ops server and the bot).

Every replica answers Slack and serves `/healthz`, `/readyz` and `/metrics`; only the holder of
the Lease (when `GEPETTO_LEADER_ELECTION` is on) runs the loops — sync, reconcile, autoscale,
legacy activation and event intake. Losing the lease cancels the loops; SIGTERM stops the
process cleanly and hands the lease over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from bot.alert_service import AlertService
from bot.app import SlackBot, build_app
from bot.pictures import DailyDigest
from bot.serve import add_http_routes, socket_mode
from bot.settings import BotSettings, load_bot_settings
from gepetto_core import cli
from gepetto_core.config import Settings
from gepetto_core.errors import ConfigError, UsageError
from gepetto_core.ops.health import LoopStatus
from gepetto_core.ops.http import HealthSources, ops_server_from_settings
from gepetto_core.ops.logging import configure_logging, secret_values
from gepetto_core.ops.metrics import METRICS
from gepetto_core.process import GepettoProcess, start_process
from gepetto_core.services.autoscaler import RoundReport
from gepetto_core.services.reconcile_service import ReconcileReport

log = logging.getLogger(__name__)


class SlackAlerts:
    """Loop results to the Slack alert service (failed deploys, recycles, digests)."""

    def __init__(self, alerts: AlertService, digest: DailyDigest | None = None) -> None:
        self._alerts = alerts
        self._digest = digest

    async def reconciled(self, report: ReconcileReport) -> None:
        await self._alerts.on_reconcile(report)

    async def autoscaled(self, report: RoundReport) -> None:
        await self._alerts.on_round(report)
        if self._digest is not None:  # #26: the daily report, posted by the leader only
            self._digest.after_round(report.started_at)


@dataclass
class _Leading:
    since: float | None = None


def _last_sync(process: GepettoProcess) -> float | None:
    stamps = [
        s.chutes.fetched_at
        for s in process.rt.sync.snapshots.values()
        if s.chutes.fetched_at is not None
    ]
    return min(stamps) if stamps else None


@contextlib.asynccontextmanager
async def slack_bot(
    settings: BotSettings, process: GepettoProcess
) -> AsyncIterator[SlackBot | None]:
    """The Slack bot when a bot token is configured (alerts wired to the loops), else None."""
    if settings.slack_bot_token is None:
        yield None
        return
    slack = build_app(settings, process.rt)
    process.observers.append(SlackAlerts(slack.alerts, slack.digest))
    try:
        yield slack
    finally:
        await slack.close()


async def serve(settings: BotSettings, stop: asyncio.Event | None = None) -> int:
    configure_logging(settings.log_format, settings.log_level, secrets=secret_values(settings))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    process = await start_process(settings)
    leading = _Leading()

    async def lead() -> None:
        leading.since = time.time()
        try:
            await process.run_loops(stop)
        finally:
            leading.since = None

    elector = process.rt.elector(lead, metrics=METRICS)

    def is_leader() -> bool | None:
        return elector.is_leader if elector is not None else None

    ops = ops_server_from_settings(
        settings,
        HealthSources(
            ping_database=lambda: process.rt.pool.fetchval("SELECT 1"),
            leader=is_leader,
            loops=lambda: LoopStatus(leading.since, _last_sync(process)),
        ),
    )
    try:
        async with slack_bot(settings, process) as slack:
            if slack is not None and settings.slack_mode == "http":
                add_http_routes(ops.app, slack.app)  # Slack shares the ops port
            await ops.start()
            log.info("gepetto serving on %s:%s", settings.http_host, ops.port)
            async with asyncio.TaskGroup() as group:
                group.create_task(elector.run(stop) if elector else lead(), name="loops")
                if slack is not None and settings.slack_mode == "socket":
                    group.create_task(_socket_mode(slack, settings, stop), name="slack")
    finally:
        await ops.stop()
        await process.close()
    return 0


async def _socket_mode(slack: SlackBot, settings: BotSettings, stop: asyncio.Event) -> None:
    async with socket_mode(slack, settings):
        await stop.wait()


@contextlib.asynccontextmanager
async def demo_slack(settings: Settings, process: GepettoProcess) -> AsyncIterator[object]:
    """The demo's Slack hookup: the bot over Socket Mode against the sandbox fleet."""
    # run_demo hands back a copy of the settings _demo gave it: the bot's.
    assert isinstance(settings, BotSettings)
    async with slack_bot(settings, process) as slack:
        if slack is None:
            yield None
            return
        async with socket_mode(slack, settings):
            yield slack


def _serve(args: Sequence[str]) -> int:
    if args:
        raise UsageError(f"gepetto serve takes no arguments (got: {' '.join(args)})")
    return asyncio.run(serve(load_bot_settings()))


def _demo(args: Sequence[str]) -> int:
    """The demo lives in gepetto_sandbox (installed by the demo extra, absent from the image)."""
    try:
        from gepetto_sandbox.demo import parse_demo_args, run_demo
    except ImportError as e:
        raise ConfigError(
            "gepetto demo", "needs the sandbox package: pip install 'gepetto[demo]'"
        ) from e
    options = parse_demo_args(args)  # a bad argument fails before anything starts
    settings = load_bot_settings()
    # With Slack tokens set, the demo connects the bot too.
    attach = demo_slack if settings.slack_bot_token is not None else None
    return asyncio.run(run_demo(settings, attach=attach, options=options))


PROCESSES = {
    "serve": cli.ProcessCommand("run the Slack bot and the background loops", _serve),
    "demo": cli.ProcessCommand(
        "run gepetto against embedded sandboxes (multi-cluster layout unless --layout single)",
        _demo,
        options="[--layout multi|single] [--source monitor|direct]",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """The `gepetto` console script."""
    return cli.main(argv, processes=PROCESSES)


if __name__ == "__main__":
    sys.exit(main())
