"""One leader-election candidate as its own process (run by test_two_processes.py).

    python elector_process.py KUBECONFIG LEASE IDENTITY LEASE_SECONDS RENEW_SECONDS

Prints `STANDBY <id>` once campaigning, `LEADING <id>` when it starts leading and
`STOPPED <id>` when it stops; SIGTERM is a graceful stop (lease released), SIGKILL a crash.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.adapters.kube_lease import KubeLease
from gepetto_core.services.leader import LeaderElector


async def main(kubeconfig: str, lease: str, identity: str, lease_s: int, renew_s: float) -> None:
    api = await connect_api(kubeconfig)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def lead() -> None:
        print(f"LEADING {identity}", flush=True)
        await asyncio.Event().wait()

    async def stopped() -> None:
        print(f"STOPPED {identity}", flush=True)

    elector = LeaderElector(
        KubeLease(api, "chutes", lease), identity, lease_s, renew_s, lead, stopped
    )
    print(f"STANDBY {identity}", flush=True)
    try:
        await elector.run(stop)
    finally:
        await api.close()
    print(f"EXIT {identity}", flush=True)


if __name__ == "__main__":
    path, lease, identity, lease_s, renew_s = sys.argv[1:6]
    asyncio.run(main(path, lease, identity, int(lease_s), float(renew_s)))
