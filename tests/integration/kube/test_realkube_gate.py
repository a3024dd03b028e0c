"""Where the real tier cannot run, a pytest run says so in a banner and skips only that tier;
with CI=true the same run fails. Checked in a child pytest told the tier is unavailable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TARGET = "tests/integration/kube/test_contract.py::test_nodes_are_servers"


def run_without_the_tier(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["GEPETTO_REALKUBE"] = "skip"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         TARGET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_without_the_real_tier_a_run_skips_it_loudly() -> None:
    result = run_without_the_tier(None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout  # the sandbox half still runs
    assert "REAL KUBERNETES TIER SKIPPED" in result.stdout
    assert "GEPETTO_REALKUBE=skip" in result.stdout


def test_under_ci_the_missing_tier_is_a_failure() -> None:
    result = run_without_the_tier("true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "CI=true makes this a failure" in result.stdout
