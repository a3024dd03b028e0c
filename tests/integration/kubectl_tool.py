"""kubectl as the tests run it: a subprocess (the in-process API servers keep serving
meanwhile) with its own cache directory beside the kubeconfig."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl")
needs_kubectl = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH"),
]


async def kubectl(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one kubectl command."""
    assert KUBECTL is not None
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "kubectl-cache"),
        "--request-timeout",
        "20s",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()
