"""The layers (README "Architecture") are import contracts in pyproject.toml, checked by
import-linter: here, so the test suite (and CI, which runs it) fails when one breaks, and in
`make lint`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("gepetto_core", "bot", "gepetto_sandbox")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    """A copy of the tree where the pure planner imports the database driver."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planner = tmp_path / "gepetto_core" / "scheduling" / "planner.py"
    planner.write_text("import asyncpg  # noqa: F401\n" + planner.read_text())

    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "scheduling is pure: no I/O library, no service, no adapter BROKEN" in result.stdout
    assert "gepetto_core.scheduling.planner -> asyncpg (l.1)" in result.stdout
