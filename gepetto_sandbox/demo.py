"""`gepetto demo`: the whole product against embedded stand-ins, with nothing to configure.

It starts a private PostgreSQL (or uses POSTGRESQL when set), the validator sandbox with a
generated catalog and its socket.io feed, a mixed GPU fleet (a few chutes are scripted to
crash), the background loops, and a console where the operator types the same commands as in
Slack. When standard input is not a terminal the console reads commands line by line and stops
at its end, so the demo can be scripted. Ctrl-C stops everything.

The fleet runs in the multi-cluster layout by default, as the official miner's charts do: one
sandbox cluster per server, each server row holding its kubeconfig, and a control-plane cluster
whose k3s node gepetto detects the layout by (docs/multi-cluster.md). Cluster state comes from
a chutes-monitor cache in a private Redis when a redis-server binary is on PATH, else from each
cluster's API. `--layout single` runs the older layout: one cluster, every server a node of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from gepetto_core.adapters.embedded_pg import EmbeddedPostgres
from gepetto_core.adapters.host import local_user
from gepetto_core.adapters.kube_layout import LayoutCluster
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.cli import write_png
from gepetto_core.commands import cli_caller, execute, parse, spec_for
from gepetto_core.config import Settings, ValidatorsConfig
from gepetto_core.errors import ConfigError, GepettoError, UsageError
from gepetto_core.process import GepettoProcess, start_process
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.cluster_alerts import cluster_health_alerts
from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.services.autoscaler import RoundReport
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_core.views import PlanView
from gepetto_sandbox.cluster import PodFault, PodTimings
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner
from gepetto_sandbox.multicluster import AgentTimings, MonitoredClusters, PrivateRedis

# A throwaway hotkey: the sandbox validator is the only one that ever sees its signatures.
DEMO_SEED = "0x" + "d3" * 32
DEMO_TIMINGS = PodTimings(start_seconds=1.0, ready_seconds=2.0, termination_seconds=0.5)
FAILURE_PRONE_CHUTES = 2
DEMO_AGENT_TIMINGS = AgentTimings(heartbeat_interval=5.0)

Print = Callable[[str], None]
Layout = Literal["single", "multi"]
Source = Literal["monitor", "direct"]


@dataclass(frozen=True)
class DemoOptions:
    layout: Layout = "multi"  # the official charts' default
    source: Source | None = None  # None: monitor when redis-server is on PATH, else direct


_CHOICES: dict[str, tuple[str, ...]] = {
    "--layout": ("multi", "single"),
    "--source": ("monitor", "direct"),
}


def parse_demo_args(args: Sequence[str]) -> DemoOptions:
    """`gepetto demo [--layout multi|single] [--source monitor|direct]`."""
    chosen: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        name, _, value = arg.partition("=")
        if name not in _CHOICES:
            raise UsageError(f"gepetto demo: unknown argument {arg!r}")
        value = value or next(rest, "")
        if value not in _CHOICES[name]:
            raise UsageError(f"gepetto demo {name}: expected {' or '.join(_CHOICES[name])}")
        chosen[name] = value
    layout: Layout = "single" if chosen.get("--layout") == "single" else "multi"
    source = chosen.get("--source")
    if source is not None and layout == "single":
        raise UsageError("gepetto demo --source: the single layout reads its one cluster")
    return DemoOptions(layout, "direct" if source == "direct" else "monitor" if source else None)


def choose_source(options: DemoOptions) -> Source:
    """Where the multi-cluster demo reads cluster state from."""
    found = shutil.which("redis-server") is not None
    if options.source == "monitor" and not found:
        raise ConfigError("gepetto demo --source monitor", "needs a redis-server binary on PATH")
    return options.source or ("monitor" if found else "direct")


def _print(text: str) -> None:
    print(text, flush=True)


class ConsoleObserver:
    """Alerts on the console as they happen: failed deploys, recycles, clusters going
    unreachable and coming back, autoscaler digests."""

    def __init__(self, out: Print) -> None:
        self._out = out
        self._clusters_down: dict[str, bool] = {}

    async def reconciled(self, report: ReconcileReport) -> None:
        alerts, self._clusters_down = cluster_health_alerts(self._clusters_down, report.health)
        for alert in alerts:
            self._out(f"[alert] {alert.text}")
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


def demo_settings(
    base: Settings,
    world: SandboxMiner,
    dsn: str,
    kubeconfig: Path,
    *,
    source: Source = "direct",
    monitor_redis_url: str | None = None,
) -> Settings:
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
            # Detected, as in production: the multi sandbox's control plane has a k3s node,
            # the single sandbox's nodes do not.
            "cluster_layout": "auto",
            "cluster_source": source,
            "monitor_redis_url": SecretStr(monitor_redis_url) if monitor_redis_url else None,
            "sync_interval_seconds": 5.0,
            "reconcile_interval_seconds": 10.0,
            "autoscale_interval_seconds": 10.0,
            "chute_shutdown_time_seconds": 2,
        }
    )


async def start_monitor(stack: contextlib.AsyncExitStack, world: SandboxMiner, data: Path) -> str:
    """A private redis-server, an agent per server cluster and a chutes-monitor filling that
    Redis as the official stack does; returns its URL (gepetto's GEPETTO_MONITOR_REDIS_URL)."""
    assert world.clusters is not None
    redis = PrivateRedis(data / "redis")
    await asyncio.to_thread(redis.start)
    stack.callback(redis.stop)
    # Agents beat every few seconds (30 s in the charts) so a cluster the monitor marked
    # `starting` at registration turns `active`, readable, within seconds of the demo's start.
    monitored = MonitoredClusters(world.clusters, redis.url(), timings=DEMO_AGENT_TIMINGS)
    await monitored.start()
    stack.push_async_callback(monitored.stop)
    await monitored.heartbeat_all()
    return redis.url()


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


async def run_demo(
    base: Settings,
    out: Print = _print,
    attach: Attach | None = None,
    options: DemoOptions = DemoOptions(),
) -> int:
    source = choose_source(options) if options.layout == "multi" else "direct"
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
            miner, seed=7, nodes=6, chutes=40, timings=DEMO_TIMINGS, kubeconfig=kubeconfig,
            layout=options.layout,
        )  # fmt: skip
        stack.push_async_callback(world.stop)
        for chute_id in sorted(world.validator.world.chutes)[:FAILURE_PRONE_CHUTES]:
            world.script_fault(chute_id, PodFault("crash", exit_code=1, after_seconds=20))
        monitor_url = None
        if world.clusters is not None and source == "monitor":
            monitor_url = await start_monitor(stack, world, data)

        settings = demo_settings(
            base, world, dsn, kubeconfig, source=source, monitor_redis_url=monitor_url
        )
        # Fleet history every 10 s instead of every minute, so `report 24h` has rows to show
        # a minute into the demo (#26).
        process = await start_process(
            settings, observers=[ConsoleObserver(out)], history_every=timedelta(seconds=10)
        )
        stack.push_async_callback(process.close)
        if attach is not None:
            await stack.enter_async_context(attach(settings, process))
            out("Slack bot connected (Socket Mode): try /gepetto scales in your workspace")
        await register_fleet(world, process.rt.inventory)  # with kubeconfigs in the multi layout
        bridge = PodBridge(world)
        bridge.start()
        stack.push_async_callback(bridge.stop)

        loops = asyncio.create_task(process.run_loops(stop), name="loops")
        stack.push_async_callback(_finish, loops, stop)
        _banner(out, world, dsn, kubeconfig, _layout_of(process), source, monitor_url)
        await _console(process, stop, interactive, out)
    out("demo stopped: loops, sandboxes and the database are down")
    return 0


async def _console(
    process: GepettoProcess, stop: asyncio.Event, interactive: bool, out: Print
) -> None:
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


def _layout_of(process: GepettoProcess) -> str:
    cluster = process.rt.cluster
    if isinstance(cluster, LayoutCluster) and cluster.layout is not None:
        return f"{cluster.layout} (detected)"
    return process.rt.settings.cluster_layout


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


def _banner(
    out: Print,
    world: SandboxMiner,
    dsn: str,
    kubeconfig: Path,
    layout: str,
    source: Source,
    monitor_url: str | None,
) -> None:
    fleet = ", ".join(f"{n.name} ({n.gpu_count}×{n.gpu_type})" for n in world.fleet)
    lines = [
        "gepetto demo is running.",
        f"  database:   {dsn}",
        f"  validator:  {world.validator.base_url} (sandbox)",
        f"  layout:     {layout}",
    ]
    if world.clusters is None:
        lines.append(f"  cluster:    {world.cluster.url} — export KUBECONFIG={kubeconfig}")
    else:
        if monitor_url is not None:
            state = f"monitor — agents and a chutes-monitor fill the cache at {monitor_url}"
        else:
            state = "direct — gepetto lists each server's cluster (no redis-server on PATH)"
            if shutil.which("redis-server"):
                state = "direct — gepetto lists each server's cluster (--source direct)"
        first = world.fleet[0].name
        lines += [
            f"  clusters:   {len(world.fleet)}, one per server, plus the control plane "
            f"{world.clusters.control_plane_name}",
            f"  state:      {state}",
            f"  kubectl:    export KUBECONFIG={kubeconfig}; "
            f"kubectl --context {first} get pods -n chutes",
        ]
        if world.clusters.tls is None:
            lines.append("              (kubectl sends its token only over TLS: needs openssl)")
    lines += [
        f"  fleet:      {fleet}",
        f"  miner:      {world.miner_hotkey}",
        "Type the same commands as in Slack: nodes, chutes, scales -g h200, insts,",
        "deploy -c CHUTE -s SERVER -y, why CHUTE, recycle --dry-run, autoscaler status,",
        "fleet [--png FILE], report 24h [--png FILE], wait SECONDS, quit.",
        "Ctrl-C stops everything.",
    ]
    out("\n".join(lines))
