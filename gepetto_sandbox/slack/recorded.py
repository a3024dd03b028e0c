"""What the Slack double saw: every Web API call with its answer, and every Socket Mode ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedCall:
    method: str
    args: dict[str, Any]
    at: float  # time.monotonic() when the call arrived
    auth_header: str | None = field(default=None, repr=False)  # holds a token: keep out of reprs
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass(frozen=True)
class SocketAck:
    envelope_id: str
    payload: dict[str, Any] | None
    latency_seconds: float
