"""Failure back-off per (chute, server) pair, per chute and per server, from the ledger.

A deployment that ended within `failure_window` of its creation is a failure (the fork's
16-minute rule, but persisted and scoped), and so is one whose counted end came before it
earned anything: without activating, or within `earning_delay` of its activation. A 423 /
no-capacity end is never one. Each scope keeps a streak of failures since its last healthy run;
the cool-down after the last failure of a streak of k is
`min(max_cooldown, base_cooldown * growth ** (k - 1))`.

Scopes and triggers:
- pair (c, s): any failure;
- chute c: failures on >= `chute_distinct_servers` distinct servers within `chute_window`
  (one bad box must not ban a chute everywhere);
- server s: failures of >= `server_distinct_chutes` distinct chutes within `server_window`
  (one bad chute must not fence a box).

A launch the validator refused (403) is not a failure either: the chute never ran. The ledger
keeps it as an uncounted entry (`refusal_reason`), and the chute waits `launch_refusal_cooldown`
before it is tried again. A job's 403 (we already tried that job) holds only that job, for good.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from gepetto_core.scheduling.policy import BackoffPolicy
from gepetto_core.scheduling.snapshot import FailureRecord

# Start of the ledger reason of a launch the validator refused (written by the deployer).
LAUNCH_REFUSED = "launch refused: "
JOB_LAUNCH_REFUSED = "job launch refused: "


def refusal_reason(detail: str, job_id: str | None = None) -> str:
    """The ledger reason of a refused launch: the chute's, or one job's (`job_id: detail`)."""
    if job_id is not None:
        return f"{JOB_LAUNCH_REFUSED}{job_id}: {detail}"
    return f"{LAUNCH_REFUSED}{detail}"


def refused_jobs(records: Iterable[FailureRecord]) -> frozenset[str]:
    """Jobs whose launch the validator refused: it refuses a miner a job it already tried."""
    return frozenset(
        r.reason.removeprefix(JOB_LAUNCH_REFUSED).split(":", 1)[0]
        for r in records
        if r.reason.startswith(JOB_LAUNCH_REFUSED)
    )


class Outcome(Enum):
    FAILURE = "failure"
    HEALTHY = "healthy"
    NEUTRAL = "neutral"  # still starting, ended for a non-counted reason, or ended mid-life


def classify(record: FailureRecord, now: datetime, policy: BackoffPolicy) -> Outcome:
    if record.ended_at is not None:
        lived = record.ended_at - record.created_at
        counted = record.counted and record.reason not in policy.never_failure_reasons
        if counted and (lived <= policy.failure_window or earned_nothing(record, policy)):
            return Outcome.FAILURE
        return Outcome.HEALTHY if lived >= policy.healthy_run else Outcome.NEUTRAL
    return Outcome.HEALTHY if now - record.created_at >= policy.healthy_run else Outcome.NEUTRAL


def earned_nothing(record: FailureRecord, policy: BackoffPolicy) -> bool:
    """Whether an ended record's instance ended before the validator paid it anything."""
    if policy.earning_delay is None or record.ended_at is None:
        return False
    if record.activated_at is None:
        return True
    return record.ended_at < record.activated_at + policy.earning_delay


def outcome_time(record: FailureRecord, outcome: Outcome, policy: BackoffPolicy) -> datetime:
    """When the outcome became known: the end of a failure, the moment a run became healthy."""
    if outcome is Outcome.FAILURE and record.ended_at is not None:
        return record.ended_at
    return record.created_at + policy.healthy_run


@dataclass(frozen=True, slots=True)
class Cooldown:
    scope: str  # "pair" | "chute" | "server"
    key: str
    until: datetime
    failures: int

    @property
    def reason(self) -> str:
        until = f"{self.until:%Y-%m-%d %H:%M} UTC"
        return f"{self.scope} back-off until {until} after {self.failures} failure(s)"


@dataclass(frozen=True, slots=True)
class LaunchRefusal:
    """The validator's latest refusal to launch a chute, while it still holds the chute back."""

    chute_id: str
    at: datetime
    until: datetime
    detail: str

    @property
    def reason(self) -> str:
        return (
            f"the validator refused a launch at {self.at:%Y-%m-%d %H:%M} UTC ({self.detail}); "
            f"next try after {self.until:%H:%M} UTC"
        )


@dataclass(frozen=True, slots=True)
class BackoffState:
    pairs: Mapping[tuple[str, str], Cooldown]
    chutes: Mapping[str, Cooldown]
    servers: Mapping[str, Cooldown]
    # Chutes with failures since their last healthy run (blocked or not): on probation, the
    # planner starts one instance at a time for them.
    suspects: frozenset[str] = frozenset()
    refusals: Mapping[str, LaunchRefusal] = field(default_factory=dict)

    def chute_block(self, chute_id: str) -> Cooldown | None:
        return self.chutes.get(chute_id)

    def chute_refusal(self, chute_id: str) -> LaunchRefusal | None:
        return self.refusals.get(chute_id)

    def server_block(self, server_id: str) -> Cooldown | None:
        return self.servers.get(server_id)

    def pair_block(self, chute_id: str, server_id: str) -> Cooldown | None:
        return self.pairs.get((chute_id, server_id))


EMPTY_BACKOFF = BackoffState(pairs={}, chutes={}, servers={})


def _has_streak(events: list[_Event]) -> bool:
    return bool(_streak(list(events)))


def _cooldown(k: int, policy: BackoffPolicy) -> timedelta:
    seconds = policy.base_cooldown.total_seconds() * policy.growth ** max(0, k - 1)
    return min(policy.max_cooldown, timedelta(seconds=seconds))


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    failure: bool
    other: str  # the server (for chute scope) or chute (for server scope) involved


def _streak(events: list[_Event]) -> list[_Event]:
    """Failures since the last healthy run, oldest first."""
    events.sort(key=lambda e: e.at)
    streak: list[_Event] = []
    for e in events:
        if e.failure:
            streak.append(e)
        else:
            streak.clear()
    return streak


def _scoped_cooldown(
    scope: str,
    key: str,
    events: list[_Event],
    distinct_needed: int,
    window: timedelta | None,
    now: datetime,
    policy: BackoffPolicy,
) -> Cooldown | None:
    streak = _streak(events)
    if not streak:
        return None
    last = streak[-1].at
    recent = streak if window is None else [e for e in streak if e.at >= last - window]
    if len({e.other for e in recent}) < distinct_needed:
        return None
    k = len(streak) - distinct_needed + 1
    until = last + _cooldown(k, policy)
    return Cooldown(scope, key, until, len(streak)) if until > now else None


def backoff_state(
    records: Iterable[FailureRecord], now: datetime, policy: BackoffPolicy
) -> BackoffState:
    records = tuple(records)  # read twice: for the failures and for the refusals
    by_pair: dict[tuple[str, str], list[_Event]] = {}
    by_chute: dict[str, list[_Event]] = {}
    by_server: dict[str, list[_Event]] = {}
    for r in records:
        outcome = classify(r, now, policy)
        if outcome is Outcome.NEUTRAL:
            continue
        at = outcome_time(r, outcome, policy)
        if at > now:
            continue
        failed = outcome is Outcome.FAILURE
        by_pair.setdefault((r.chute_id, r.server_id), []).append(_Event(at, failed, r.server_id))
        by_chute.setdefault(r.chute_id, []).append(_Event(at, failed, r.server_id))
        by_server.setdefault(r.server_id, []).append(_Event(at, failed, r.chute_id))

    pairs: dict[tuple[str, str], Cooldown] = {}
    for (chute_id, server_id), events in by_pair.items():
        cd = _scoped_cooldown("pair", f"{chute_id}@{server_id}", events, 1, None, now, policy)
        if cd is not None:
            pairs[(chute_id, server_id)] = cd
    chutes: dict[str, Cooldown] = {}
    for chute_id, events in by_chute.items():
        cd = _scoped_cooldown(
            "chute",
            chute_id,
            events,
            policy.chute_distinct_servers,
            policy.chute_window,
            now,
            policy,
        )
        if cd is not None:
            chutes[chute_id] = cd
    servers: dict[str, Cooldown] = {}
    for server_id, events in by_server.items():
        cd = _scoped_cooldown(
            "server",
            server_id,
            events,
            policy.server_distinct_chutes,
            policy.server_window,
            now,
            policy,
        )
        if cd is not None:
            servers[server_id] = cd
    suspects = frozenset(c for c, events in by_chute.items() if _has_streak(events))
    return BackoffState(
        pairs=pairs,
        chutes=chutes,
        servers=servers,
        suspects=suspects,
        refusals=launch_refusals(records, now, policy),
    )


def launch_refusals(
    records: Iterable[FailureRecord], now: datetime, policy: BackoffPolicy
) -> dict[str, LaunchRefusal]:
    """Per chute, its latest launch refusal that is younger than `launch_refusal_cooldown` and
    that the operator did not clear (`backoff clear`)."""
    out: dict[str, LaunchRefusal] = {}
    for r in records:
        if r.ended_at is None or r.ended_at > now or r.forgiven:
            continue
        if not r.reason.startswith(LAUNCH_REFUSED):
            continue
        until = r.ended_at + policy.launch_refusal_cooldown
        known = out.get(r.chute_id)
        if until > now and (known is None or r.ended_at > known.at):
            detail = r.reason.removeprefix(LAUNCH_REFUSED)
            out[r.chute_id] = LaunchRefusal(r.chute_id, r.ended_at, until, detail)
    return out
