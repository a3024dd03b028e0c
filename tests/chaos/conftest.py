"""The chaos suite's tally: every test counts its runs, the faults it injected, the invariant
checks that passed and anything lost. The table is printed at the end of the session, and a
session that lost anything fails even if each test passed (a lost item is a failure of the
whole suite, not a flake of one test)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gepetto_sandbox.multicluster import PrivateRedis

TALLY_KEY = pytest.StashKey["ChaosTally"]()


class Lost(AssertionError):
    """An invariant failed: something was lost (a GPU leaked, a healthy deployment removed,
    an action done twice, a secret or traceback shown)."""


@dataclass
class ChaosTally:
    runs: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    lost: list[str] = field(default_factory=list)

    def run(self, kind: str, n: int = 1) -> None:
        self.runs[kind] += n

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] += n

    def expect(self, ok: object, what: str) -> None:
        """Count one invariant check; a failed one is recorded as lost and fails the test."""
        if ok:
            self.checks += 1
            return
        self.lost.append(what)
        raise Lost(what)

    @property
    def used(self) -> bool:
        return bool(self.runs or self.faults or self.checks or self.lost)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TALLY_KEY] = ChaosTally()


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> ChaosTally:
    return request.config.stash[TALLY_KEY]


@pytest.fixture(scope="session")
def monitor_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """The chutes-monitor cache's Redis in the multi-monitor layout: private, so nobody
    else's keys; each world empties it first."""
    server = PrivateRedis(tmp_path_factory.mktemp("monitor-redis"))
    server.start()
    yield server
    server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    tally = session.config.stash.get(TALLY_KEY, None)
    if tally is not None and tally.lost and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = terminalreporter.config.stash.get(TALLY_KEY, None)
    if tally is None or not tally.used:
        return
    write = terminalreporter.write_line
    terminalreporter.section("chaos summary")
    write(f"{'runs':<56}{sum(tally.runs.values()):>8}")
    for kind, n in sorted(tally.runs.items()):
        write(f"  {kind:<54}{n:>8}")
    write(f"{'faults injected':<56}{sum(tally.faults.values()):>8}")
    for kind, n in sorted(tally.faults.items()):
        write(f"  {kind:<54}{n:>8}")
    write(f"{'invariant checks passed':<56}{tally.checks:>8}")
    write(f"{'lost (must be 0)':<56}{len(tally.lost):>8}")
    for what in tally.lost:
        write(f"  LOST: {what}", red=True)
