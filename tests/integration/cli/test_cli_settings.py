"""A command needs only the settings of what it touches (issue #21, items 5 and 6): help needs
none at all, a command that reads no cluster never asks for a kubeconfig, one that reads no
validator never asks for the hotkey. Each run is the real console entry point in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gepetto_core.commands import VERBS

from .conftest import CLI_TIMEOUT, CliRun, CliWorld

ENTRY = [sys.executable, "-m", "bot.main"]  # what the `gepetto` console script runs


async def run_bare(*args: str, home: Path) -> CliRun:
    """`gepetto ARGS` with no configuration at all: no MINER_*, VALIDATORS, POSTGRESQL,
    KUBECONFIG or GEPETTO_* variable, and a home without ~/.kube/config."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = await asyncio.create_subprocess_exec(
        *ENTRY,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return CliRun(proc.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("verb", [v for v in VERBS if v != "help"] + ["serve", "demo", "db"])
async def test_help_of_every_command_needs_no_settings(verb: str, tmp_path: Path) -> None:
    run = await run_bare(verb, "-h", home=tmp_path)
    assert run.code == 0, (run.out, run.err)
    assert run.err == ""
    assert verb in run.out and "usage" in run.out.lower()


async def test_top_level_help_lists_the_process_commands(tmp_path: Path) -> None:
    run = await run_bare("--help", home=tmp_path)
    assert run.code == 0 and run.err == ""
    for command in ("serve", "demo", "db", "chutes", "pods"):
        assert f"\n  {command} " in run.out


async def test_chutes_never_asks_for_a_kubeconfig(cli: CliWorld, tmp_path: Path) -> None:
    # No KUBECONFIG, no ~/.kube/config, not in a pod: the cluster is unreachable by any means.
    no_cluster = {"KUBECONFIG": "", "HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": ""}
    run = await cli.run("chutes", "--json", env=no_cluster)
    assert run.code == 0, run.err
    assert run.json()["rows"], "the chutes table is empty"
    # A command that does read the cluster asks for it, naming the variable.
    pods = await cli.run("pods", env=no_cluster)
    assert pods.code == 1 and pods.out == ""
    assert pods.err.startswith("gepetto: error: KUBECONFIG: is not set"), pods.err


async def test_a_cluster_read_never_asks_for_the_hotkey(cli: CliWorld) -> None:
    no_hotkey = {"MINER_SS58": "", "MINER_SEED": "", "VALIDATORS": ""}
    run = await cli.run("nodes", "--json", env=no_hotkey)
    assert run.code == 0, run.err
    assert len(run.json()["rows"]) == len(cli.world.fleet)


async def test_an_unreadable_control_plane_names_the_layout_setting(cli: CliWorld) -> None:
    """GEPETTO_CLUSTER_LAYOUT=auto (the default) must look at the control plane's nodes; when
    it cannot, the one-line error says so and names the setting instead of guessing a layout.
    With the layout set, nothing is detected: the error is the cluster's own."""
    dead = cli.dead_cluster_env()
    auto = await cli.run("pods", env=dead)
    assert auto.code == 1 and auto.out == "" and len(auto.err_lines) == 1, auto.err
    assert auto.err.startswith("gepetto: error: GEPETTO_CLUSTER_LAYOUT=auto cannot tell"), auto.err
    assert "Cannot connect to host 127.0.0.1:9" in auto.err
    assert "set GEPETTO_CLUSTER_LAYOUT=single or GEPETTO_CLUSTER_LAYOUT=multi" in auto.err
    single = await cli.run("pods", env={**dead, "GEPETTO_CLUSTER_LAYOUT": "single"})
    assert single.code == 1 and "Cannot connect to host 127.0.0.1:9" in single.err
    assert "GEPETTO_CLUSTER_LAYOUT" not in single.err
