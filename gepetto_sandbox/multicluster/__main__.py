"""Run a multi-cluster sandbox standalone: `python -m gepetto_sandbox.multicluster --servers 3
--kubeconfig /tmp/multi.kubeconfig [--redis-url redis://127.0.0.1:6379/5]`, then
`kubectl --kubeconfig /tmp/multi.kubeconfig --context SERVER get pods -n chutes`. With a Redis
URL, agents and a chutes-monitor fill that Redis as the official stack does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from gepetto_sandbox.cluster import PodTimings, build_fleet
from gepetto_sandbox.multicluster.agent import AgentTimings
from gepetto_sandbox.multicluster.clusters import MultiClusterSandbox
from gepetto_sandbox.multicluster.world import MonitoredClusters


async def _serve(args: argparse.Namespace) -> None:
    fleet = build_fleet(seed=args.seed, count=args.servers, tee_every=args.tee_every)
    clusters = MultiClusterSandbox(
        fleet, seed=args.seed, timings=PodTimings(args.start_seconds, args.ready_seconds, 1.0)
    )
    await clusters.start()
    monitored: MonitoredClusters | None = None
    try:
        if args.kubeconfig:
            clusters.write_kubeconfig(args.kubeconfig)
        for name, member in clusters.members.items():
            print(f"{name}: {member.url}", flush=True)
        if args.redis_url:
            timings = AgentTimings(heartbeat_interval=args.heartbeat_seconds)
            monitored = MonitoredClusters(clusters, args.redis_url, timings=timings)
            await monitored.start()
            print(f"monitor writing to {args.redis_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if monitored is not None:
            await monitored.stop()
        await clusters.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gepetto_sandbox.multicluster")
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--kubeconfig", default=None, help="write the merged kubeconfig here")
    parser.add_argument("--redis-url", default=None, help="run agents and a monitor on it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tee-every", type=int, default=0)
    parser.add_argument("--heartbeat-seconds", type=float, default=30.0)
    parser.add_argument("--start-seconds", type=float, default=2.0)
    parser.add_argument("--ready-seconds", type=float, default=3.0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
