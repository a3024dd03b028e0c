"""`gepetto demo`: the whole product against embedded stand-ins, with nothing to configure.

It starts a private PostgreSQL (or uses POSTGRESQL when set), the validator sandbox with a
generated catalog and its socket.io feed, the cluster sandbox with a mixed GPU fleet (a few
chutes are scripted to crash), the background loops, and a console where the operator types the
same commands as in Slack. When standard input is not a terminal the console reads commands line
by line and stops at its end, so the demo can be scripted. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from gepetto_core.adapters.embedded_pg import EmbeddedPostgres
from gepetto_core.adapters.host import local_user
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.cli import write_png
from gepetto_core.commands import cli_caller, execute, parse, spec_for
from gepetto_core.config import Settings, ValidatorsConfig
from gepetto_core.errors import GepettoError
from gepetto_core.process import GepettoProcess, start_process
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.services.autoscaler import RoundReport
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_core.views import PlanView
from gepetto_sandbox.cluster import PodFault, PodTimings
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner

# A throwaway hotkey: the sandbox validator is the only one that ever sees its signatures.
DEMO_SEED = "0x" + "d3" * 32
DEMO_TIMINGS = PodTimings(start_seconds=1.0, ready_seconds=2.0, termination_seconds=0.5)
FAILURE_PRONE_CHUTES = 2

Print = Callable[[str], None]


def _print(text: str) -> None:
    print(text, flush=True)


class ConsoleObserver:
    """Alerts on the console as they happen: failed deploys, recycles, autoscaler digests."""

    def __init__(self, out: Print) -> None:
        self._out = out

    async def reconciled(self, report: ReconcileReport) -> None:
        for result in report.results:
            action = result.action
            if isinstance(action, RemoveDeployment):
                mark = "✗ deploy failed" if action.end == "failure" else "↺ recycled"
                self._out(
                    f"[alert] {mark}: deployment {action.deployment_id[:8]} — {action.reason}"
                )
        for problem in report.plan.problems:
            self._out(f"[alert] recycle held back: {problem}")

    async def autoscaled(self, report: RoundReport) -> None:
        if report.error:
            self._out(f"[autoscaler] round failed: {report.error}")
        elif report.outcomes:
            counts = {r: report.count(r) for r in ("deployed", "no capacity", "failed")}
            text = ", ".join(f"{n} {r}" for r, n in counts.items() if n)
            self._out(f"[autoscaler] {report.mode} round: {text}")


async def _fresh_database(pg: EmbeddedPostgres) -> str:
    """A new, empty `gepetto_demo` database on the embedded server: the sandboxes are new on
    every run, so yesterday's deployments would point at nothing."""
    return await pg.fresh_database("gepetto_demo")


def demo_settings(base: Settings, world: SandboxMiner, dsn: str, kubeconfig: Path) -> Settings:
    validators = ValidatorsConfig(
        supported=[
            {
                "hotkey": world.validator.hotkey,
                "api": world.validator.base_url,
                "socket": world.validator.base_url,
            }
        ]
    )
    return base.model_copy(
        update={
            "miner_ss58": world.miner_hotkey,
            "miner_seed": SecretStr(DEMO_SEED),
            "validators": validators,
            "postgresql": SecretStr(dsn),
            "kubeconfig": str(kubeconfig),
            "event_source": "socketio",
            "sync_interval_seconds": 5.0,
            "reconcile_interval_seconds": 10.0,
            "autoscale_interval_seconds": 10.0,
            "chute_shutdown_time_seconds": 2,
        }
    )


def _streams(fd: int) -> bool:
    """Whether input on `fd` arrives over time (a terminal, a pipe, a socket) and so must be
    awaited. A regular file or a device such as /dev/null is read at once: it never blocks, and
    the event loop cannot poll it (epoll refuses it, and a read would then wait forever)."""
    mode = os.fstat(fd).st_mode
    return os.isatty(fd) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def _lines(stop: asyncio.Event, interactive: bool) -> AsyncIterator[str]:
    """Console input without a blocking thread (so Ctrl-C and end-of-input both stop cleanly)."""
    if not _streams(sys.stdin.fileno()):
        for line in sys.stdin.read().splitlines():  # `gepetto demo < script`, `< /dev/null`
            if stop.is_set():
                return
            yield line
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not stop.is_set():
        if interactive:
            print("gepetto> ", end="", flush=True)
        read = asyncio.ensure_future(reader.readline())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not read.done():
            read.cancel()
            return
        raw = read.result()
        if not raw:
            return
        yield raw.decode(errors="replace")


async def run_console_line(process: GepettoProcess, line: str, out: Print) -> None:
    """One console line: the same commands as the CLI and Slack, plus `wait SECONDS`."""
    words = line.split()
    if words[0] == "wait":
        await asyncio.sleep(float(words[1]) if len(words) > 1 else 5.0)
        return
    try:
        parsed = parse(words)
        caller = cli_caller(local_user())
        result = await execute(parsed, caller, process.rt)
        if spec_for(parsed).mutation and isinstance(result, PlanView):
            out(render_text(result))
            if not parsed.yes:
                out("(add -y to carry it out)")
                return
            result = await execute(parsed, caller, process.rt, confirmed=True)
        out(render_text(result))
        if parsed.opts.get("png"):  # #26: fleet/report --png FILE
            out(write_png(result, str(parsed.opts["png"])))
    except GepettoError as e:
        out(f"error: {e}")


# Joins a front end (the Slack bot) to the running process for the demo's lifetime.
Attach = Callable[[Settings, GepettoProcess], contextlib.AbstractAsyncContextManager[object]]


async def run_demo(base: Settings, out: Print = _print, attach: Attach | None = None) -> int:
    data = await asyncio.to_thread(_data_dir, base.data_dir)
    kubeconfig = data / "kubeconfig"
    miner = HotkeySigner(DEMO_SEED).hotkey
    interactive = sys.stdin.isatty()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        dsn = base.postgres_dsn()
        if dsn is None:
            out("starting the embedded PostgreSQL ...")
            pg = EmbeddedPostgres(data / "pgdata")
            await asyncio.to_thread(pg.start)
            stack.callback(pg.stop)
            dsn = await _fresh_database(pg)
        world = await start_sandbox_miner(
            miner, seed=7, nodes=6, chutes=40, timings=DEMO_TIMINGS, kubeconfig=kubeconfig
        )
        stack.push_async_callback(world.stop)
        for chute_id in sorted(world.validator.world.chutes)[:FAILURE_PRONE_CHUTES]:
            world.cluster.script_fault(chute_id, PodFault("crash", exit_code=1, after_seconds=20))

        settings = demo_settings(base, world, dsn, kubeconfig)
        # Fleet history every 10 s instead of every minute, so `report 24h` has rows to show
        # a minute into the demo (#26).
        process = await start_process(
            settings, observers=[ConsoleObserver(out)], history_every=timedelta(seconds=10)
        )
        stack.push_async_callback(process.close)
        if attach is not None:
            await stack.enter_async_context(attach(settings, process))
            out("Slack bot connected (Socket Mode): try /gepetto scales in your workspace")
        await register_fleet(world, process.rt.inventory)
        bridge = PodBridge(world)
        bridge.start()
        stack.push_async_callback(bridge.stop)

        loops = asyncio.create_task(process.run_loops(stop), name="loops")
        stack.push_async_callback(_finish, loops, stop)
        _banner(out, world, dsn, kubeconfig)

        ended = True  # the script ran out (no quit, no Ctrl-C)
        async for line in _lines(stop, interactive):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if not interactive:
                out(f"gepetto> {text}")
            if text in ("quit", "exit"):
                ended = False
                break
            await run_console_line(process, text, out)
        if ended and not stop.is_set():
            out("end of input: stopping the demo")
        stop.set()
    out("demo stopped: loops, sandboxes and the database are down")
    return 0


def _data_dir(path: str) -> Path:
    data = Path(path).resolve()
    data.mkdir(parents=True, exist_ok=True)
    return data


async def _finish(loops: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    try:
        await asyncio.wait_for(loops, timeout=15)
    except (TimeoutError, asyncio.CancelledError):
        loops.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loops


def _banner(out: Print, world: SandboxMiner, dsn: str, kubeconfig: Path) -> None:
    fleet = ", ".join(f"{n.name} ({n.gpu_count}×{n.gpu_type})" for n in world.fleet)
    out(
        "\n".join(
            [
                "gepetto demo is running.",
                f"  database:   {dsn}",
                f"  validator:  {world.validator.base_url} (sandbox)",
                f"  cluster:    {world.cluster.url} — export KUBECONFIG={kubeconfig}",
                f"  fleet:      {fleet}",
                f"  miner:      {world.miner_hotkey}",
                "Type the same commands as in Slack: nodes, chutes, scales -g h200, insts,",
                "deploy -c CHUTE -s SERVER -y, why CHUTE, recycle --dry-run, autoscaler status,",
                "fleet [--png FILE], report 24h [--png FILE], wait SECONDS, quit.",
                "Ctrl-C stops everything.",
            ]
        )
    )
