"""Real `gepetto serve` subprocesses for the chaos suite: start, wait for readiness, SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from .world import ChaosWorld, miner_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(world: ChaosWorld, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEPETTO_", "MINER_"))}
    env.update(
        miner_env(
            world.sandbox,
            world.dsn,
            **world.layout_env,
            GEPETTO_HTTP_HOST="127.0.0.1",
            GEPETTO_HTTP_PORT=str(port),
            GEPETTO_SYNC_INTERVAL_SECONDS="1",
            GEPETTO_RECONCILE_INTERVAL_SECONDS="1",
            GEPETTO_AUTOSCALE_INTERVAL_SECONDS="1",
            GEPETTO_LOG_FORMAT="json",
            **extra,
        )
    )
    return env


class Serve:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = int(env["GEPETTO_HTTP_PORT"])
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.main",
            "serve",
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=asyncio.subprocess.STDOUT,
        )

    async def readiness(self, http: aiohttp.ClientSession) -> dict[str, object] | None:
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                body: dict[str, object] = await resp.json()
                return body
        except (aiohttp.ClientError, ValueError):
            return None

    async def wait_answering(self, http: aiohttp.ClientSession, seconds: float = 60) -> None:
        async with asyncio.timeout(seconds):
            while await self.readiness(http) is None:
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)
