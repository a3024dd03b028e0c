"""gepetto's own durable state as rows: the deployment ledger (failure back-off), the audit log,
pending actions (buttons, approvals), the autoscaler mode and posted alerts. The store is
`gepetto_core.adapters.pg_state`; services and the bot read these types, never the adapter."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AutoscalerModeName = Literal["active", "shadow", "paused"]
PendingStatus = Literal[
    "pending", "approved", "executing", "done", "failed", "expired", "cancelled"
]


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LedgerEntry(_Row):
    deployment_id: str
    chute_id: str
    server_id: str
    gpu_type: str
    validator: str
    created_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    counts_as_failure: bool = True
    forgiven_at: datetime | None = None
    forgiven_by: str | None = None
    activated_at: datetime | None = None


class AuditEntry(_Row):
    audit_id: int
    at: datetime
    actor: str
    source: str
    verb: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    allowed: bool
    approvals: list[Any] = Field(default_factory=list)
    result: str | None = None
    message_link: str | None = None


class PendingAction(_Row):
    action_id: str
    verb: str
    arguments: dict[str, Any]
    plan: dict[str, Any] | None = None
    requested_by: str
    source: str
    policy: str
    status: PendingStatus
    approvals: list[Any] = Field(default_factory=list)
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    result: dict[str, Any] | None = None
    message_ref: dict[str, Any] | None = None


class AutoscalerMode(_Row):
    mode: AutoscalerModeName
    paused_until: datetime | None = None
    updated_by: str
    updated_at: datetime


class AlertRecord(_Row):
    """An alert as posted to chat: where its message is (channel, message and thread ids, opaque
    to the core) and how often it fired. A repeat edits the message instead of posting anew."""

    alert_key: str
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    state: str = "open"
    occurrences: int = 1
    first_at: datetime
    last_at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)
