"""Benchmark: one sync + reconcile round over 100 GPU-server clusters × 8 GPUs (the official
multi-cluster layout, docs/multi-cluster.md), in the sandbox.

The sandbox side (bench/multicluster_world.py) runs in a process of its own: a validator
sandbox, 100 sandbox clusters over HTTPS (one API endpoint and kubeconfig each), and the monitor
world (an agent per cluster and a chutes-monitor simulator filling a private Redis). This
process is the miner: a fresh PostgreSQL database holding the servers (each row with its
`servers.kubeconfig`), GPUs and `--per-server` verified deployments per server, whose Services
and Jobs run on their clusters.

A round is `Reconciler.run_once(dry_run=True)`: the validator sync, the fleet read through the
Cluster port (`read_fleet`, fanned out over every server cluster) and the database, and the
plan. Dry run, so nothing is applied; the world is converged (the planned actions are recorded:
none), so a real pass would apply nothing either. Rounds are timed:
- with the monitor source (the cache in Redis): target ≤ 1 s;
- with the direct source (every cluster's API listed): target ≤ 3 s;
- with the direct source while 5 clusters hang (accept, never answer): target at most one
  per-cluster timeout (`--timeout`) more than without.
Memory: tracemalloc's peak of Python allocations during one extra round of each kind (timed
rounds run without tracemalloc, which slows allocation-heavy code), the resident memory (VmRSS)
each source's runtime added, and the process's ru_maxrss growth over the whole run. Figures go
to bench/results.json, key `multicluster`.

    .venv/bin/python -m bench.bench_multicluster [--servers 100] [--rounds 5] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from bittensor_wallet import Keypair

from bench.results import save_results
from gepetto_core.config import Settings, load_settings
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.miner import hourly_cost

SERVER = os.environ.get("GEPETTO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED = "0x" + "b5" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
NAMESPACE = "chutes"
HANGING = 5
MIB = 1024 * 1024


class SandboxProcess:
    """bench/multicluster_world.py, driven over its standard input and output."""

    def __init__(self, proc: asyncio.subprocess.Process, world: dict[str, Any]) -> None:
        self.proc = proc
        self.world = world

    @classmethod
    async def start(cls, servers: int, workdir: Path) -> SandboxProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.multicluster_world", "--miner", MINER,
            "--servers", str(servers), "--redis-dir", str(workdir / "redis"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=(workdir / "world.log").open("ab"), limit=64 * MIB,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            raise SystemExit(f"the sandbox did not start; see {workdir / 'world.log'}")
        return cls(proc, json.loads(line))

    async def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        return json.loads(await self.proc.stdout.readline())

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        try:
            await self.ask("quit")
            await asyncio.wait_for(self.proc.wait(), 60)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, json.JSONDecodeError):
            self.proc.kill()
            await self.proc.wait()


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"gepetto_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(SERVER)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def rss_now_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def miner_settings(
    world: dict[str, Any], dsn: str, kubeconfig: Path, source: str, timeout: float
) -> Settings:
    validators = {
        "supported": [{"hotkey": world["validator_hotkey"], "api": world["validator_url"]}]
    }
    return load_settings(
        {
            "MINER_SS58": MINER,
            "MINER_SEED": SEED,
            "VALIDATORS": json.dumps(validators),
            "POSTGRESQL": dsn,
            "KUBECONFIG": str(kubeconfig),
            "GEPETTO_EVENT_SOURCE": "none",
            "GEPETTO_CLUSTER_LAYOUT": "multi",
            "GEPETTO_CLUSTER_SOURCE": source,
            "GEPETTO_MONITOR_REDIS_URL": world["redis_url"],
            "GEPETTO_CLUSTER_TIMEOUT_SECONDS": str(timeout),
            "GEPETTO_CLUSTER_FANOUT": "32",
        }
    )


def server_row(s: dict[str, Any]) -> Server:
    """The row `chutes-miner add-node` writes in the multi-cluster layout (kubeconfig and
    agent_api included), as gepetto_sandbox/miner.py's register_fleet does."""
    return Server(
        server_id=s["server_id"],
        validator=s["validator"],
        name=s["name"],
        ip_address=s["ip_address"],
        status="Ready",
        labels=s["labels"],
        gpu_count=s["gpu_count"],
        cpu_per_gpu=max(1, min(4, (s["cpu"] - 2) // s["gpu_count"])),
        memory_per_gpu=max(1, int((s["memory_gib"] - 6) * 0.8 // s["gpu_count"])),
        hourly_cost=hourly_cost(s["gpu_type"]),
        is_tee=s["is_tee"],
        kubeconfig=s["kubeconfig"],
        agent_api=s["agent_api"],
    )


async def register(rt: Runtime, world: dict[str, Any]) -> None:
    for s in world["servers"]:
        await rt.inventory.upsert_server(server_row(s))
        for gpu in s["gpus"]:
            await rt.inventory.upsert_gpu(
                Gpu(
                    gpu_id=gpu["uuid"],
                    validator=s["validator"],
                    server_id=s["server_id"],
                    device_info={"uuid": gpu["uuid"], "index": gpu["index"]},
                    model_short_ref=s["gpu_type"],
                    verified=True,
                )
            )


def fitting(chutes: list[Chute], gpu_type: str) -> list[Chute]:
    return sorted(
        (
            c
            for c in chutes
            if gpu_type in c.supported_gpus and c.gpu_count <= 4 and not c.tee and c.image
        ),
        key=lambda c: (c.gpu_count, c.chute_id),
    )


async def populate(rt: Runtime, world: dict[str, Any], per_server: int) -> int:
    """`per_server` verified, active deployments on every server: rows (GPUs claimed) and
    their Service and Job on the server's own cluster, through the Cluster port."""
    from gepetto_core import kube_objects as ko

    chutes = await rt.inventory.list_chutes()
    servers = {s.server_id: s for s in await rt.inventory.list_servers()}
    now = datetime.now(UTC)
    made = 0
    gate = asyncio.Semaphore(16)

    async def deploy_on(s: dict[str, Any]) -> int:
        server = servers[s["server_id"]]
        count = 0
        for chute in fitting(chutes, s["gpu_type"])[:per_server]:
            deployment = Deployment(
                deployment_id=str(uuid.uuid4()),
                instance_id=str(uuid.uuid4()),
                validator=server.validator,
                chute_id=chute.chute_id,
                server_id=server.server_id,
                version=chute.version,
                host=server.ip_address,
                active=True,
                verified_at=now,
                activated_at=now,
            )
            gpus = await rt.inventory.create_deployment(deployment, chute.gpu_count)
            async with gate:
                await rt.cluster.deploy_chute(chute, server, gpus, deployment, ko.LaunchParams())
            count += 1
        return count

    for n in await asyncio.gather(*(deploy_on(s) for s in world["servers"])):
        made += n
    return made


async def fleet_jobs(rt: Runtime) -> int:
    reading = await rt.cluster.read_fleet()
    if reading.jobs is None or reading.unknown:
        return -1
    return len(reading.jobs)


async def converge(rt: Runtime, expected: int, seconds: float = 120.0) -> None:
    """Until the source shows every Job (the monitor's cache fills from the agents' watches)."""
    async with asyncio.timeout(seconds):
        while True:  # polled: the cache fills in another process
            if await fleet_jobs(rt) == expected:
                return
            await asyncio.sleep(0.2)


async def timed(rounds: int, work: Callable[[], Awaitable[ReconcileReport]]) -> dict[str, Any]:
    times = []
    report: ReconcileReport | None = None
    for _ in range(rounds):
        started = time.perf_counter()
        report = await work()
        times.append(time.perf_counter() - started)
    assert report is not None
    tracemalloc.start()
    await work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds_median": round(statistics.median(times), 3),
        "seconds_max": round(max(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        "tracemalloc_peak_mib": round(peak / MIB, 1),
        "planned_actions": dict(Counter(type(a).__name__ for a in report.plan.actions)),
        "plan_complete": report.plan.complete,
        "problems": list(report.plan.problems)[:5],
    }


async def measure_source(
    world: SandboxProcess,
    dsn: str,
    kubeconfig: Path,
    source: str,
    cluster_timeout: float,
    rounds: int,
    expected_jobs: int,
) -> dict[str, Any]:
    rss_before = rss_now_mib()
    rt = await build_runtime(miner_settings(world.world, dsn, kubeconfig, source, cluster_timeout))
    try:
        await converge(rt, expected_jobs)
        await rt.reconciler.run_once(dry_run=True)  # warm: clients built, connections open
        figures = await timed(rounds, lambda: rt.reconciler.run_once(dry_run=True))
        figures["rss_growth_mib"] = round(rss_now_mib() - rss_before, 1)
        if source == "direct":
            names = [s["name"] for s in world.world["servers"][:HANGING]]
            await world.ask("hang " + " ".join(names))
            try:
                hanging = await timed(
                    max(1, rounds // 2), lambda: rt.reconciler.run_once(dry_run=True)
                )
            finally:
                await world.ask("release")
            figures["hanging"] = {"clusters": names, **hanging}
    finally:
        await rt.close()
    return figures


async def run(servers: int, per_server: int, rounds: int, cluster_timeout: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-multicluster-"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    world = await SandboxProcess.start(servers, workdir)
    try:
        kubeconfig = workdir / "control-plane.kubeconfig"
        kubeconfig.write_text(json.dumps(world.world["control_plane_kubeconfig"]))
        async with database() as dsn:
            settings = miner_settings(world.world, dsn, kubeconfig, "direct", cluster_timeout)
            rt = await build_runtime(settings)
            try:
                await register(rt, world.world)
                await rt.reconciler.run_once()  # the chutes into the database
                deployed = await populate(rt, world.world, per_server)
            finally:
                await rt.close()
            results = {}
            for source in ("monitor", "direct"):
                results[source] = await measure_source(
                    world, dsn, kubeconfig, source, cluster_timeout, rounds, deployed
                )
        sandbox_rss = await world.ask("rss")
    finally:
        await world.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    monitor, direct = results["monitor"], results["direct"]
    extra = direct["hanging"]["seconds_max"] - direct["seconds_median"]
    return {
        "servers": servers,
        "gpus_per_server": world.world["servers"][0]["gpu_count"],
        "deployments": deployed,
        "round": "Reconciler.run_once(dry_run=True): validator sync + read_fleet + database + "
        "plan; converged world, nothing to apply",
        "cluster_timeout_seconds": cluster_timeout,
        "monitor": monitor,
        "direct": direct,
        "hanging_extra_seconds": round(extra, 3),
        "targets": {
            "monitor_seconds": 1.0,
            "direct_seconds": 3.0,
            "hanging_extra_at_most_seconds": cluster_timeout,
        },
        "met": {
            "monitor": monitor["seconds_median"] <= 1.0,
            "direct": direct["seconds_median"] <= 3.0,
            "hanging": extra <= cluster_timeout,
        },
        "process_max_rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "sandbox_process_max_rss_mib": sandbox_rss,
        "sandbox_start_seconds": world.world["started_seconds"],
        "memory_note": "tracemalloc_peak_mib: peak Python allocations during one round (an "
        "extra round, not timed); rss_growth_mib: resident memory (VmRSS) after that source's "
        "runtime was built, warmed and ran its rounds, minus before; "
        "process_max_rss_growth_mib: ru_maxrss growth of the miner process over setup (the "
        "deploys) and all rounds",
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--per-server", type=int, default=2, help="deployments per server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=2.0, help="per-cluster timeout (s)")
    args = parser.parse_args()
    figures = asyncio.run(run(args.servers, args.per_server, args.rounds, args.timeout))
    for source in ("monitor", "direct"):
        f = figures[source]
        print(
            f"{source}: {f['seconds_median']:.3f} s median over {len(f['seconds_all'])} rounds, "
            f"peak {f['tracemalloc_peak_mib']} MiB (tracemalloc)"
        )
    hanging = figures["direct"]["hanging"]
    print(
        f"direct, {HANGING} clusters hanging: {hanging['seconds_max']:.3f} s max "
        f"(+{figures['hanging_extra_seconds']:.3f} s; "
        f"timeout {figures['cluster_timeout_seconds']} s)"
    )
    print(f"met: {figures['met']}")
    save_results("multicluster", figures)


if __name__ == "__main__":
    main()
