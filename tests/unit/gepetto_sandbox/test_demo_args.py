"""`gepetto demo [--layout multi|single] [--source monitor|direct]`: multi by default (the
official charts' default); a bad argument is a usage error before anything starts."""

from __future__ import annotations

import pytest

from gepetto_core.errors import UsageError
from gepetto_sandbox.demo import DemoOptions, parse_demo_args


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], DemoOptions("multi", None)),
        (["--layout", "single"], DemoOptions("single", None)),
        (["--layout=multi", "--source", "direct"], DemoOptions("multi", "direct")),
        (["--source=monitor"], DemoOptions("multi", "monitor")),
    ],
)
def test_demo_arguments(args: list[str], options: DemoOptions) -> None:
    assert parse_demo_args(args) == options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layout"], "expected multi or single"),
        (["--layout", "double"], "expected multi or single"),
        (["--nodes", "3"], "unknown argument '--nodes'"),
        (["--layout", "single", "--source", "direct"], "the single layout reads its one cluster"),
    ],
)
def test_bad_demo_arguments_are_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_demo_args(args)
