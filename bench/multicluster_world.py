"""The sandbox side of bench/bench_multicluster.py, in a process of its own so the benchmark
process measures only the miner side: a validator sandbox that knows the fleet, one sandbox
cluster per GPU server (`MultiClusterSandbox`), and, with `--redis-dir`, a private redis-server
filled by an agent per cluster and a chutes-monitor simulator (the monitor world).

It prints one JSON line describing the world (validator URL, Redis URL, every server with its
GPUs and `servers.kubeconfig` text), then takes commands on standard input, one a line, and
answers each with one line: `hang NAME...` (those APIs accept connections and never answer),
`release` (they answer again), `jobs` (Job count per cluster, as JSON), `rss` (this process's
resident MiB), `quit`.

    python -m bench.multicluster_world --miner SS58 --servers 100 [--redis-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from gepetto_sandbox.cluster import PodTimings, build_fleet
from gepetto_sandbox.miner import add_to_validator
from gepetto_sandbox.multicluster import (
    AgentTimings,
    MonitoredClusters,
    MultiClusterSandbox,
    PrivateRedis,
)
from gepetto_sandbox.validator import SandboxValidator

# 8-GPU server types only (GPU_TYPES in gepetto_sandbox/validator/gpus.py).
GPU_TYPES = ("h100", "h200")
TIMINGS = PodTimings(start_seconds=0.05, ready_seconds=0.05, termination_seconds=0.05)


def describe(
    validator: SandboxValidator,
    clusters: MultiClusterSandbox,
    gpus: dict[str, list[dict[str, Any]]],
    redis_url: str | None,
    started_seconds: float,
) -> dict[str, Any]:
    servers = []
    for name, member in clusters.members.items():
        node = member.node
        servers.append(
            {
                "name": name,
                "server_id": node.uid,
                "validator": node.validator,
                "ip_address": node.external_ip,
                "gpu_type": node.gpu_type,
                "gpu_count": node.gpu_count,
                "cpu": node.cpu,
                "memory_gib": node.memory_gib,
                "is_tee": node.tee,
                "labels": node.to_object()["metadata"]["labels"],
                "kubeconfig": member.kubeconfig_text(),
                "agent_api": member.agent_api,
                "gpus": gpus[name],
            }
        )
    return {
        "validator_url": validator.base_url,
        "validator_hotkey": validator.hotkey,
        "redis_url": redis_url,
        "control_plane_kubeconfig": clusters.control_plane_kubeconfig(),
        "servers": servers,
        "started_seconds": round(started_seconds, 2),
        "rss_mib": rss_mib(),
    }


def rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def commands(clusters: MultiClusterSandbox) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    hanging: set[str] = set()
    while line := (await reader.readline()).decode():
        verb, *args = line.split()
        answer: Any = "ok"
        if verb == "hang":
            for name in args:
                clusters.hang_api(name)
            hanging.update(args)
        elif verb == "release":
            for name in hanging:
                clusters.release_api(name)
            hanging.clear()
        elif verb == "jobs":
            answer = {
                name: len(m.sandbox.objects("jobs", "chutes"))
                for name, m in clusters.members.items()
            }
        elif verb == "rss":
            answer = rss_mib()
        elif verb == "quit":
            print(json.dumps("bye"), flush=True)
            return
        else:
            answer = f"unknown command {verb!r}"
        print(json.dumps(answer), flush=True)


async def serve(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    validator = SandboxValidator(seed=args.seed, miners=[args.miner])
    validator.load_generated(args.chutes, seed=args.seed)
    await validator.start()
    fleet = build_fleet(
        seed=args.seed, count=args.servers, gpu_types=GPU_TYPES, validator=validator.hotkey
    )
    gpus = {}
    for node in fleet:
        added = add_to_validator(validator, args.miner, node)
        gpus[node.name] = [{"uuid": g["uuid"], "index": g["device_index"]} for g in added["gpus"]]
    clusters = MultiClusterSandbox(fleet, seed=args.seed, timings=TIMINGS)
    await clusters.start()
    redis: PrivateRedis | None = None
    monitored: MonitoredClusters | None = None
    try:
        if args.redis_dir:
            redis = PrivateRedis(Path(args.redis_dir))
            redis.start()
            monitored = MonitoredClusters(
                clusters, redis.url(), timings=AgentTimings(heartbeat_interval=30.0)
            )
            await monitored.start()
            # registered clusters are `starting` until their agent's first heartbeat
            await monitored.heartbeat_all()
        world = describe(
            validator,
            clusters,
            gpus,
            redis.url() if redis else None,
            time.perf_counter() - started,
        )
        print(json.dumps(world), flush=True)
        await commands(clusters)
    finally:
        for name in clusters.names:
            clusters.release_api(name)
        if monitored is not None:
            await monitored.stop()
        await clusters.stop()
        await validator.stop()
        if redis is not None:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multicluster_world")
    parser.add_argument("--miner", required=True, help="the miner hotkey (ss58)")
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--chutes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--redis-dir", default=None, help="run agents and a monitor on Redis")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
