"""Pending actions behind buttons, and the two-person approval rules.

A button's value is only an opaque id (``pa_…``) of a row in ``gepetto_pending_actions``; the
verb, its arguments and the plan stay server-side. Executing is a compare-and-set
(``pending → executing``), so double clicks, Slack retries and replayed payloads run once.

Approval (the two-person rule): the approver is not the requester, holds the
verb's role (checked by ``bot.authz`` on the click), and the request has not expired (15 min);
the plan is re-checked before it runs. The judges below are pure; ``PendingActions`` does I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from gepetto_core.clock import utcnow
from gepetto_core.models.state import PendingAction, PendingStatus

OFFER_TTL = timedelta(hours=1)  # a Deploy button on a table
VIEW_TTL = timedelta(hours=24)  # paging / sharing a read
ALERT_TTL = timedelta(days=7)  # buttons on an alert
APPROVAL_TTL = timedelta(minutes=15)


class PendingStore(Protocol):
    """Where pending actions live (`gepetto_core.adapters.pg_state.PgState` in the process)."""

    async def create_pending(self, action: PendingAction) -> None: ...

    async def get_pending(self, action_id: str) -> PendingAction | None: ...

    async def transition_pending(
        self,
        action_id: str,
        *,
        from_statuses: tuple[PendingStatus, ...],
        to_status: PendingStatus,
        at: datetime,
        approvals: list[Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> PendingAction | None: ...


STATUS_WORDS: dict[str, str] = {
    "approved": "is already approved",
    "executing": "is already running",
    "done": "was already done",
    "failed": "already ran and failed",
    "expired": "has expired",
    "cancelled": "was cancelled",
}


def new_action_id() -> str:
    return "pa_" + secrets.token_urlsafe(16)


def already(action: PendingAction) -> str:
    who = _decider(action)
    return f"this request {STATUS_WORDS.get(action.status, action.status)}{who}"


def _decider(action: PendingAction) -> str:
    for entry in reversed(action.approvals):
        if isinstance(entry, dict) and entry.get("by"):
            return f" (by <@{entry['by']}>)"
    return ""


def judge_execute(action: PendingAction, now: datetime) -> str | None:
    """Why a confirm click may not run ``action`` now, or None."""
    if action.status != "pending":
        return already(action)
    if now >= action.expires_at:
        return "this button has expired; run the command again for a fresh plan"
    return None


def judge_approval(action: PendingAction, approver: str, now: datetime) -> str | None:
    """Why ``approver`` may not approve ``action`` now, or None (role is checked elsewhere)."""
    if action.policy != "approval":
        return "this is not an approval request"
    if action.status != "pending":
        return already(action)
    if approver == action.requested_by:
        return "you cannot approve your own request; a second person must"
    if now >= action.expires_at:
        return "this approval request has expired; ask again for a fresh plan"
    return None


def approval_entry(by: str, decision: str, at: datetime) -> dict[str, Any]:
    return {"by": by, "decision": decision, "at": at.isoformat()}


class PendingActions:
    """The pending-action rows the bot creates and moves (PgState underneath)."""

    def __init__(self, state: PendingStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._state = state
        self.clock = clock

    async def create(
        self,
        *,
        verb: str,
        arguments: dict[str, Any],
        requested_by: str,
        policy: str,
        ttl: timedelta,
        plan: dict[str, Any] | None = None,
        message_ref: dict[str, Any] | None = None,
    ) -> PendingAction:
        now = self.clock()
        action = PendingAction(
            action_id=new_action_id(),
            verb=verb,
            arguments=arguments,
            plan=plan,
            requested_by=requested_by,
            source="slack",
            policy=policy,
            status="pending",
            created_at=now,
            expires_at=now + ttl,
            message_ref=message_ref,
        )
        await self._state.create_pending(action)
        return action

    async def get(self, action_id: str) -> PendingAction | None:
        if not action_id.startswith("pa_") or len(action_id) > 64:
            return None  # not one of ours: never reaches the database as a query key
        return await self._state.get_pending(action_id)

    async def move(
        self,
        action: PendingAction,
        to_status: PendingStatus,
        *,
        from_statuses: tuple[PendingStatus, ...] = ("pending",),
        by: str | None = None,
        decision: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> PendingAction | None:
        """Compare-and-set; None when another click got there first."""
        now = self.clock()
        approvals = None
        if by is not None:
            approvals = [*action.approvals, approval_entry(by, decision or to_status, now)]
        return await self._state.transition_pending(
            action.action_id,
            from_statuses=from_statuses,
            to_status=to_status,
            at=now,
            approvals=approvals,
            result=result,
        )

    async def finish(self, action: PendingAction, ok: bool, summary: str) -> None:
        await self._state.transition_pending(
            action.action_id,
            from_statuses=("executing",),
            to_status="done" if ok else "failed",
            at=self.clock(),
            result={"ok": ok, "summary": summary[:500]},
        )
