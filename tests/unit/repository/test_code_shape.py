"""Size limits on the code (issue 22): no function over 60 lines, no module over 500 lines, in
the product (`gepetto_core`, `bot`) and the sandboxes (`gepetto_sandbox`). A long function is
several steps without names; a long module is several ideas. Data tables are exempt, each by
name below with the reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("gepetto_core", "bot", "gepetto_sandbox")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500

# (module path, function name) -> why it may be longer: a table of declarations, not logic.
FUNCTION_TABLES: dict[tuple[str, str], str] = {
    ("gepetto_core/ops/metrics.py", "__init__"): (
        "declares every Prometheus metric with its help text and labels, one per statement"
    ),
}
# Module path -> why it may be longer.
MODULE_TABLES: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _long_functions(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES and (rel, node.name) not in FUNCTION_TABLES:
            found.append(f"{rel}:{node.lineno} {node.name} is {lines} lines")
    return found


def test_no_function_is_over_the_limit() -> None:
    found = [f for path in _modules() for f in _long_functions(path)]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_no_module_is_over_the_limit() -> None:
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES and rel not in MODULE_TABLES:
            found.append(f"{rel} is {lines} lines")
    assert not found, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(found)


@pytest.mark.parametrize("entry", sorted(FUNCTION_TABLES) + sorted(MODULE_TABLES))
def test_every_exemption_still_exists(entry: tuple[str, str] | str) -> None:
    """An exemption whose function or module is gone (or was renamed) is removed, not kept."""
    rel, name = entry if isinstance(entry, tuple) else (entry, None)
    path = ROOT / rel
    assert path.is_file(), rel
    if name is not None:
        names = {
            n.name
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert name in names, f"{rel} has no function {name}"


def test_the_checker_sees_a_long_function(tmp_path: Path) -> None:
    """The checker itself: a function of exactly the limit passes, one line more is reported."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    probe = tmp_path / "probe.py"
    probe.write_text(f"async def long():\n{body}\n")
    assert _long_functions(probe, tmp_path) == []
    probe.write_text(f"async def long():\n{body}\n    return None\n")
    assert _long_functions(probe, tmp_path) == [
        f"probe.py:1 long is {MAX_FUNCTION_LINES + 1} lines"
    ]
