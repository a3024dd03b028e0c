"""`gepetto demo` run as an operator would: a scripted console session on standard input, and
Ctrl-C. The autoscaler must place chutes, `scales` must answer, and nothing may be left running."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

GEPETTO = [sys.executable, "-m", "gepetto_core.cli", "demo"]


def demo_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEPETTO_", "POSTGRESQL"))}
    env["GEPETTO_DATA_DIR"] = str(data_dir)
    return env


def leftovers(data_dir: Path) -> list[str]:
    """Processes still holding anything under the demo's data folder (the embedded server)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


async def test_a_scripted_demo_places_chutes_and_stops_cleanly(tmp_path: Path) -> None:
    script = "nodes\nwait 15\nscales -g h100\ninsts\nautoscaler status\nquit\n"
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        env=demo_env(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(script.encode()), timeout=180)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "gepetto demo is running." in text and "KUBECONFIG=" in text
    assert "[autoscaler] active round:" in text and " deployed" in text, text
    assert "Best chute x server combinations" in text  # scales answered
    assert "Chute instances" in text and "autoscaler: active" in text
    assert "demo stopped" in text
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


async def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        env=demo_env(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while b"gepetto demo is running." not in await proc.stdout.readline():
            pass
    proc.send_signal(signal.SIGINT)
    out = await asyncio.wait_for(proc.stdout.read(), timeout=60)
    assert await proc.wait() == 0, out.decode()
    assert b"demo stopped" in out
    assert leftovers(tmp_path) == []


@pytest.fixture(autouse=True)
def _no_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEPETTO_SLACK_BOT_TOKEN", raising=False)
