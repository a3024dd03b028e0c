"""`gepetto demo [--layout multi|single] [--source monitor|direct]`: multi by default (the
official charts' default); a bad argument is a usage error before anything starts."""

from __future__ import annotations

import shutil

import pytest

from gepetto_core.errors import ConfigError, UsageError
from gepetto_sandbox.demo import DemoOptions, choose_source, parse_demo_args


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


@pytest.mark.parametrize(
    ("source", "redis_server", "chosen"),
    [
        (None, "/usr/bin/redis-server", "monitor"),
        (None, None, "direct"),
        ("direct", "/usr/bin/redis-server", "direct"),
        ("monitor", "/usr/bin/redis-server", "monitor"),
    ],
)
def test_the_state_source_follows_redis_server_unless_named(
    monkeypatch: pytest.MonkeyPatch, source: str | None, redis_server: str | None, chosen: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: redis_server)
    assert choose_source(parse_demo_args(["--source", source] if source else [])) == chosen


def test_the_monitor_source_without_redis_server_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a redis-server binary on PATH"):
        choose_source(parse_demo_args(["--source", "monitor"]))
