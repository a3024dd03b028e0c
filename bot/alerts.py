"""Alert decisions, pure: what to post, edit or thread for a batch of events, and when.

Nothing here talks to Slack or the database; ``bot.alert_service`` loads the known alerts,
asks these functions what to do, and does it. Rules:

- **Dedupe** by key ``(chute, server)``: a repeat of an open alert edits its message
  ("seen 3 times") instead of posting a new one; a resolved alert is edited to ✅.
- **Storms**: when ``storm_threshold`` distinct failures fall within ``storm_window``, one
  parent message (counts and likely suspects) is posted and every failure goes into its thread;
  further failures join the thread while the storm lasts.
- **Pacing**: at most one new message per channel per ``post_interval`` seconds, edits of one
  message coalesced to one per ``edit_interval`` seconds, and a 429's ``Retry-After`` honoured
  for the whole channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gepetto_core.models.state import AlertRecord

OPEN_STATES = frozenset({"open", "acknowledged"})


@dataclass(frozen=True)
class AlertPolicy:
    storm_threshold: int = 3
    storm_window: timedelta = timedelta(seconds=60)
    # A repeat after this long is a new incident, not the old one again.
    reopen_after: timedelta = timedelta(hours=1)
    post_interval: float = 1.0  # chat.postMessage is ~1 msg/s per channel
    edit_interval: float = 2.0  # at most one chat.update per message every 2 s


@dataclass(frozen=True)
class DeployFailure:
    """A deploy that failed: by the deployer, or a pod that died soon after it started."""

    chute_id: str
    server_id: str
    reason: str
    at: datetime
    chute_name: str | None = None
    server_name: str | None = None
    deployment_id: str | None = None
    log_lines: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return failure_key(self.chute_id, self.server_id)

    def to_payload(self) -> dict[str, Any]:
        return {
            "kind": "failure",
            "chute_id": self.chute_id,
            "server_id": self.server_id,
            "chute_name": self.chute_name,
            "server_name": self.server_name,
            "deployment_id": self.deployment_id,
            "reason": self.reason,
            "log_lines": list(self.log_lines),
        }


def failure_key(chute_id: str, server_id: str) -> str:
    return f"deploy-failed:{chute_id}:{server_id}"


def storm_key(started: datetime) -> str:
    return f"storm:{started.isoformat()}"


# -- effects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAlert:
    """Post a new top-level failure alert (with Retry / Back off / Undeploy buttons)."""

    failure: DeployFailure


@dataclass(frozen=True)
class RepeatAlert:
    """The same failure again: edit the existing message (in a thread or not)."""

    key: str
    failure: DeployFailure
    occurrences: int


@dataclass(frozen=True)
class StartStorm:
    """Post one storm parent, then every failure in ``failures`` as a reply in its thread.
    ``earlier`` are keys of failures already alerted on their own that belong to this storm."""

    key: str
    failures: tuple[DeployFailure, ...]
    earlier: tuple[str, ...] = ()


@dataclass(frozen=True)
class JoinStorm:
    """Reply in the running storm's thread and refresh its parent."""

    key: str
    failure: DeployFailure


AlertEffect = NewAlert | RepeatAlert | StartStorm | JoinStorm


def _kind(alert: AlertRecord) -> str:
    return str(alert.payload.get("kind", ""))


def active_storm(
    known: Iterable[AlertRecord], now: datetime, policy: AlertPolicy
) -> AlertRecord | None:
    """The storm still running (open, last failure within the window), if any."""
    storms = [
        a
        for a in known
        if _kind(a) == "storm" and a.state in OPEN_STATES and now - a.last_at <= policy.storm_window
    ]
    return max(storms, key=lambda a: a.last_at, default=None)


def plan_failure_alerts(
    failures: Sequence[DeployFailure],
    known: Mapping[str, AlertRecord],
    now: datetime,
    policy: AlertPolicy | None = None,
) -> list[AlertEffect]:
    """What to do for a batch of failures, given the alerts already posted (by key)."""
    policy = policy or AlertPolicy()
    effects: list[AlertEffect] = []
    fresh: dict[str, DeployFailure] = {}
    repeats: Counter[str] = Counter()
    for failure in failures:
        existing = known.get(failure.key)
        if _still_open(existing, now, policy) or failure.key in fresh:
            repeats[failure.key] += 1
            if failure.key in fresh:
                fresh[failure.key] = failure  # the latest reason wins
            else:
                assert existing is not None
                effects.append(
                    RepeatAlert(failure.key, failure, existing.occurrences + repeats[failure.key])
                )
        else:
            fresh[failure.key] = failure
    if not fresh:
        return _merge_repeats(effects)
    new = list(fresh.values())
    storm = active_storm(known.values(), now, policy)
    if storm is not None:
        effects += [JoinStorm(storm.alert_key, f) for f in new]
        return _merge_repeats(effects)
    recent = _recent_failures(known.values(), now, policy, exclude=fresh)
    if len(recent) + len(new) >= policy.storm_threshold:
        started = min([now, *(a.first_at for a in recent)])
        effects.append(
            StartStorm(storm_key(started), tuple(new), tuple(a.alert_key for a in recent))
        )
    else:
        effects += [NewAlert(f) for f in new]
    # A failure repeated inside this batch counts its extra occurrences too.
    for key, extra in repeats.items():
        if key in fresh:
            effects.append(RepeatAlert(key, fresh[key], 1 + extra))
    return _merge_repeats(effects)


def _still_open(existing: AlertRecord | None, now: datetime, policy: AlertPolicy) -> bool:
    """An alert for the same key is open, posted and recent: the failure repeats it."""
    return (
        existing is not None
        and existing.state in OPEN_STATES
        and existing.message_ts is not None
        and now - existing.last_at <= policy.reopen_after
    )


def _recent_failures(
    known: Iterable[AlertRecord], now: datetime, policy: AlertPolicy, exclude: Mapping[str, object]
) -> list[AlertRecord]:
    """Open failure alerts of the storm window, not in a storm's thread, oldest first."""
    return sorted(
        (
            a
            for a in known
            if _kind(a) == "failure"
            and a.state in OPEN_STATES
            and a.thread_ts is None
            and now - a.first_at <= policy.storm_window
            and a.alert_key not in exclude
        ),
        key=lambda a: a.first_at,
    )


def _merge_repeats(effects: list[AlertEffect]) -> list[AlertEffect]:
    """Several repeats of one key in a batch become one edit with the final count."""
    out: list[AlertEffect] = []
    index: dict[str, int] = {}
    for effect in effects:
        if isinstance(effect, RepeatAlert) and effect.key in index:
            out[index[effect.key]] = effect
            continue
        if isinstance(effect, RepeatAlert):
            index[effect.key] = len(out)
        out.append(effect)
    return out


# -- storm summary --------------------------------------------------------------------------


@dataclass(frozen=True)
class StormSummary:
    count: int
    chutes: int
    servers: int
    # (what, how many failures it shares), most shared first: the likely common cause.
    suspects: tuple[tuple[str, int], ...] = ()


def summarize_storm(failures: Sequence[Mapping[str, Any]]) -> StormSummary:
    """Counts and suspects from the failure payloads in a storm (shared server, chute, reason)."""
    servers = Counter(str(f.get("server_name") or f.get("server_id")) for f in failures)
    chutes = Counter(str(f.get("chute_name") or f.get("chute_id")) for f in failures)
    reasons = Counter(_reason_class(str(f.get("reason", ""))) for f in failures)
    suspects: list[tuple[str, int]] = []
    for label, counter in (("server", servers), ("chute", chutes), ("reason", reasons)):
        name, n = counter.most_common(1)[0] if counter else ("", 0)
        if n >= 2:
            suspects.append((f"{label} {name}", n))
    suspects.sort(key=lambda s: -s[1])
    return StormSummary(len(failures), len(chutes), len(servers), tuple(suspects))


def _reason_class(reason: str) -> str:
    # "job failed: Error, exit 137" and "job failed: Error, exit 1" share the class "job failed".
    return reason.split(":", 1)[0].strip() or "unknown"


# -- autoscaler digest ----------------------------------------------------------------------


@dataclass
class DigestBuffer:
    """Autoscaler outcomes gathered between digests (one message per interval, not per action)."""

    interval: timedelta = timedelta(minutes=10)
    started_at: datetime | None = None
    rounds: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    max_lines: int = 30

    def add(self, now: datetime, outcomes: Iterable[tuple[str, str]], error: str | None) -> None:
        """Record one round: (result, one-line description) per outcome, and its error."""
        if self.started_at is None:
            self.started_at = now
        self.rounds += 1
        for result, line in outcomes:
            self.outcomes[result] += 1
            if len(self.lines) < self.max_lines:
                self.lines.append(f"{result}: {line}")
        if error:
            self.errors.append(error)

    def due(self, now: datetime) -> bool:
        has_news = bool(self.outcomes or self.errors)
        return has_news and self.started_at is not None and now - self.started_at >= self.interval

    def take(self) -> DigestBuffer:
        """The gathered digest; this buffer starts empty again."""
        taken = DigestBuffer(
            self.interval,
            self.started_at,
            self.rounds,
            self.outcomes,
            self.lines,
            self.errors,
            self.max_lines,
        )
        self.started_at, self.rounds = None, 0
        self.outcomes, self.lines, self.errors = Counter(), [], []
        return taken


# -- pacing ---------------------------------------------------------------------------------


@dataclass
class ChannelPacer:
    """Per-channel slots for new messages; ``now`` is passed in (seconds, monotonic)."""

    interval: float = 1.0
    _next_free: dict[str, float] = field(default_factory=dict)

    def reserve(self, channel: str, now: float) -> float:
        """Take the channel's next slot; returns how long to wait for it."""
        at = max(now, self._next_free.get(channel, now))
        self._next_free[channel] = at + self.interval
        return at - now

    def retry_after(self, channel: str, now: float, seconds: float) -> None:
        """Slack said 429: nothing goes to this channel before ``now + seconds``."""
        self._next_free[channel] = max(self._next_free.get(channel, now), now + seconds)


@dataclass
class EditCoalescer:
    """Edits of one message within ``interval`` seconds collapse into the latest one."""

    interval: float = 2.0
    _pending: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _last_sent: dict[tuple[str, str], float] = field(default_factory=dict)

    def offer(self, channel: str, ts: str, message: dict[str, Any], now: float) -> float | None:
        """Queue an edit; returns the delay before it may be sent, or None if one is already
        waiting (the waiting flush will send this newer content instead)."""
        key = (channel, ts)
        waiting = key in self._pending
        self._pending[key] = message
        if waiting:
            return None
        last = self._last_sent.get(key)
        return 0.0 if last is None else max(0.0, last + self.interval - now)

    def take(self, channel: str, ts: str, now: float) -> dict[str, Any] | None:
        key = (channel, ts)
        message = self._pending.pop(key, None)
        if message is not None:
            self._last_sent[key] = now
        return message

    def waiting(self) -> int:
        return len(self._pending)
