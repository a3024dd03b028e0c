"""The Slack double's rate limits: a rule answers HTTP 429 with `Retry-After` for the next few
calls of a method (`SlackDouble.rate_limit`) or for calls closer together than an interval
(`SlackDouble.throttle`), per channel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class RateRule:
    method: str
    channel: str | None
    remaining: int | None  # None: an interval rule, applied forever
    retry_after: int
    interval: float = 0.0
    last_seen: dict[str, float] = field(default_factory=dict)


def retry_after(rules: Iterable[RateRule], method: str, channel: str, now: float) -> int | None:
    """The `Retry-After` seconds of the first rule that refuses this call (None: allowed).
    A counting rule uses up one refusal; an interval rule records when the channel was seen."""
    for rule in rules:
        if rule.method != method or (rule.channel is not None and rule.channel != channel):
            continue
        if rule.remaining is not None:
            if rule.remaining > 0:
                rule.remaining -= 1
                return rule.retry_after
            continue
        last = rule.last_seen.get(channel)
        if last is not None and now - last < rule.interval:
            return rule.retry_after
        rule.last_seen[channel] = now
    return None
