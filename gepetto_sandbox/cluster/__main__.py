"""Run the cluster sandbox standalone: `python -m gepetto_sandbox.cluster --port 6443
--kubeconfig /tmp/sandbox.kubeconfig`, then point kubectl or gepetto at that kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from gepetto_sandbox.cluster.fleet import build_fleet
from gepetto_sandbox.cluster.sandbox import SandboxCluster
from gepetto_sandbox.cluster.script import PodTimings


async def _serve(args: argparse.Namespace) -> None:
    sandbox = SandboxCluster(
        seed=args.seed,
        nodes=build_fleet(seed=args.seed, count=args.nodes, tee_every=args.tee_every),
        timings=PodTimings(args.start_seconds, args.ready_seconds, args.termination_seconds),
        kubeconfig_path=args.kubeconfig,
    )
    url = await sandbox.start(args.host, args.port)
    print(f"sandbox cluster at {url}; kubeconfig: {args.kubeconfig or '(not written)'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gepetto_sandbox.cluster")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", default=None, help="write a kubeconfig here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--tee-every", type=int, default=0)
    parser.add_argument("--start-seconds", type=float, default=2.0)
    parser.add_argument("--ready-seconds", type=float, default=3.0)
    parser.add_argument("--termination-seconds", type=float, default=1.0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
