"""Two separate processes campaign for one Lease, on the cluster sandbox and on the real API
server (as gepetto's ServiceAccount): one leads; the other takes over when the leader is killed
(SIGKILL, no release) and hands over on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

HELPER = Path(__file__).with_name("elector_process.py")
# Real processes on a real clock: a leader stalled for its renew deadline (2/3 of the lease) may
# rightly step down, and the takeover below waits out the lease. 6 s keeps a loaded machine's
# stalls far from that deadline at the cost of a few seconds' wait.
LEASE_SECONDS = 6
RENEW_SECONDS = 0.5
# Hang detectors, not asserted timings: how soon a standby may take over is the pure rule's
# business (tests/unit/ops/test_leader_plan.py); here, on a loaded machine, it only has to.
STARTUP_BOUND = 60.0  # importing the stack on a busy 2-core machine
TAKEOVER_BOUND = 60.0


class Replica:
    def __init__(self, identity: str, process: asyncio.subprocess.Process) -> None:
        self.identity = identity
        self.process = process
        self.lines: list[str] = []

    async def expect(self, word: str, seconds: float) -> None:
        """Read output until `WORD identity` (fails on timeout or exit)."""
        assert self.process.stdout is not None
        want = f"{word} {self.identity}"
        async with asyncio.timeout(seconds):
            while want not in self.lines:
                line = await self.process.stdout.readline()
                assert line, f"{self.identity} exited; output: {self.lines}"
                self.lines.append(line.decode().strip())


class Spawner:
    """Starts candidate processes for one fresh lease; kills leftovers at teardown."""

    def __init__(self, kubeconfig: Path, lease: str) -> None:
        self.kubeconfig = kubeconfig
        self.lease = lease
        self.started: list[Replica] = []

    async def start(self, identity: str) -> Replica:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(HELPER), str(self.kubeconfig), self.lease, identity,
            str(LEASE_SECONDS), str(RENEW_SECONDS),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        replica = Replica(identity, process)
        self.started.append(replica)
        return replica

    async def close(self) -> None:
        for replica in self.started:
            if replica.process.returncode is None:
                replica.process.kill()
                await replica.process.wait()


@pytest.fixture
async def spawner(lease_backend: Any) -> AsyncIterator[Spawner]:
    spawner = Spawner(lease_backend.kubeconfig, lease_backend.lease)
    yield spawner
    await spawner.close()


async def holder(api: client.ApiClient, lease: str) -> str | None:
    found = await client.CoordinationV1Api(api).read_namespaced_lease(lease, "chutes")
    value: str | None = found.spec.holder_identity
    return value


async def test_two_processes_one_leader_then_takeover(spawner: Spawner, lease_backend: Any) -> None:
    lease, api = spawner.lease, lease_backend.api
    a = await spawner.start("proc-a")
    await a.expect("LEADING", STARTUP_BOUND)
    b = await spawner.start("proc-b")
    await b.expect("STANDBY", STARTUP_BOUND)
    # While a is alive, b campaigns (several retry periods) without leading.
    for _ in range(5):
        await asyncio.sleep(RENEW_SECONDS)
        assert await holder(api, lease) == "proc-a"
    assert "LEADING proc-b" not in b.lines

    a.process.send_signal(signal.SIGKILL)  # no release: b waits for the lease to expire
    await a.process.wait()
    await b.expect("LEADING", TAKEOVER_BOUND)
    assert await holder(api, lease) == "proc-b"

    b.process.send_signal(signal.SIGTERM)  # graceful: stop leading, release, exit 0
    await b.expect("EXIT", TAKEOVER_BOUND)
    assert "STOPPED proc-b" in b.lines
    assert await b.process.wait() == 0
    assert await holder(api, lease) is None
