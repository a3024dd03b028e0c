"""gepetto's own durable state: the deployment ledger (failure back-off), the audit log, pending
actions (buttons, approvals), the autoscaler mode, posted alerts and the server and chute
removals waiting on a deferred undeploy. Tables are `gepetto_*`; the rows are
`gepetto_core.models.state`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gepetto_core.adapters.pg import translate_errors
from gepetto_core.models.state import (
    AlertRecord,
    AuditEntry,
    AutoscalerMode,
    AutoscalerModeName,
    LedgerEntry,
    PendingAction,
    PendingStatus,
)


@dataclass(frozen=True, slots=True)
class _Removals:
    """A removal-request table, the inventory table its rows go with, and their key."""

    noun: str
    table: str
    rows: str
    key: str


_SERVER_REMOVALS = _Removals("server", "gepetto_server_removals", "servers", "server_id")
_CHUTE_REMOVALS = _Removals("chute", "gepetto_chute_removals", "chutes", "chute_id")


class PgState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- deployment ledger --------------------------------------------------------------------
    async def record_deployment_start(self, entry: LedgerEntry) -> None:
        async with translate_errors("recording a deployment start"):
            await self._pool.execute(
                """
                INSERT INTO gepetto_deployment_ledger
                    (deployment_id, chute_id, server_id, gpu_type, validator, created_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (deployment_id) DO NOTHING
                """,
                entry.deployment_id,
                entry.chute_id,
                entry.server_id,
                entry.gpu_type,
                entry.validator,
                entry.created_at,
            )

    async def record_deployment_end(
        self,
        deployment_id: str,
        ended_at: datetime,
        reason: str,
        *,
        counts_as_failure: bool,
        activated_at: datetime | None = None,
    ) -> bool:
        """Close a ledger entry once; a later end report for the same deployment is ignored so
        the first (most precise) reason wins. Returns whether this call closed it."""
        async with translate_errors("recording a deployment end"):
            result = await self._pool.execute(
                """
                UPDATE gepetto_deployment_ledger
                SET ended_at = $2, end_reason = $3, counts_as_failure = $4, activated_at = $5
                WHERE deployment_id = $1 AND ended_at IS NULL
                """,
                deployment_id,
                ended_at,
                reason,
                counts_as_failure,
                activated_at,
            )
        return bool(result.endswith(" 1"))

    async def list_ledger(self, since: datetime | None = None) -> list[LedgerEntry]:
        async with translate_errors("reading the deployment ledger"):
            records = await self._pool.fetch(
                """
                SELECT * FROM gepetto_deployment_ledger
                WHERE $1::timestamptz IS NULL OR created_at >= $1 OR ended_at IS NULL
                ORDER BY created_at
                """,
                since,
            )
        return [LedgerEntry.model_validate(dict(r)) for r in records]

    async def forgive(
        self, at: datetime, by: str, chute_id: str | None = None, server_id: str | None = None
    ) -> int:
        """Clear back-off: failures of the chute (and/or server) stop counting. Returns how many
        ledger entries were forgiven."""
        async with translate_errors("clearing back-off"):
            result = await self._pool.execute(
                """
                UPDATE gepetto_deployment_ledger SET forgiven_at = $1, forgiven_by = $2
                WHERE forgiven_at IS NULL AND ended_at IS NOT NULL
                  AND ($3::varchar IS NULL OR chute_id = $3)
                  AND ($4::varchar IS NULL OR server_id = $4)
                """,
                at,
                by,
                chute_id,
                server_id,
            )
        return int(result.rsplit(" ", 1)[-1])

    # --- audit ----------------------------------------------------------------------------------
    async def add_audit(
        self,
        *,
        actor: str,
        source: str,
        verb: str,
        arguments: dict[str, Any],
        allowed: bool,
        result: str | None = None,
        approvals: list[Any] | None = None,
        message_link: str | None = None,
    ) -> int:
        async with translate_errors("writing the audit log"):
            audit_id = await self._pool.fetchval(
                """
                INSERT INTO gepetto_audit
                    (actor, source, verb, arguments, allowed, result, approvals, message_link)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING audit_id
                """,
                actor,
                source,
                verb,
                arguments,
                allowed,
                result,
                approvals or [],
                message_link,
            )
        return int(audit_id)

    async def finish_audit(self, audit_id: int, result: str) -> None:
        async with translate_errors("writing the audit log"):
            await self._pool.execute(
                "UPDATE gepetto_audit SET result = $2 WHERE audit_id = $1", audit_id, result
            )

    async def list_audit(
        self, *, actor: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        async with translate_errors("reading the audit log"):
            records = await self._pool.fetch(
                """
                SELECT * FROM gepetto_audit
                WHERE ($1::varchar IS NULL OR actor = $1) AND ($2::timestamptz IS NULL OR at >= $2)
                ORDER BY at DESC, audit_id DESC LIMIT $3
                """,
                actor,
                since,
                limit,
            )
        return [AuditEntry.model_validate(dict(r)) for r in records]

    # --- pending actions ------------------------------------------------------------------------
    async def create_pending(self, action: PendingAction) -> None:
        async with translate_errors("saving a pending action"):
            await self._pool.execute(
                """
                INSERT INTO gepetto_pending_actions
                    (action_id, verb, arguments, plan, requested_by, source, policy, status,
                     approvals, created_at, expires_at, message_ref)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """,
                action.action_id,
                action.verb,
                action.arguments,
                action.plan,
                action.requested_by,
                action.source,
                action.policy,
                action.status,
                action.approvals,
                action.created_at,
                action.expires_at,
                action.message_ref,
            )

    async def get_pending(self, action_id: str) -> PendingAction | None:
        async with translate_errors("reading a pending action"):
            row = await self._pool.fetchrow(
                "SELECT * FROM gepetto_pending_actions WHERE action_id = $1", action_id
            )
        return PendingAction.model_validate(dict(row)) if row else None

    async def transition_pending(
        self,
        action_id: str,
        *,
        from_statuses: tuple[PendingStatus, ...],
        to_status: PendingStatus,
        at: datetime,
        approvals: list[Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> PendingAction | None:
        """Move an action to `to_status` only if it is in one of `from_statuses` — a
        compare-and-set, so a double click or a replayed request executes once. Returns the
        updated action, or None when another request got there first."""
        async with translate_errors("updating a pending action"):
            row = await self._pool.fetchrow(
                """
                UPDATE gepetto_pending_actions
                SET status = $3, decided_at = $4,
                    approvals = COALESCE($5, approvals), result = COALESCE($6, result)
                WHERE action_id = $1 AND status = ANY($2::varchar[])
                RETURNING *
                """,
                action_id,
                list(from_statuses),
                to_status,
                at,
                approvals,
                result,
            )
        return PendingAction.model_validate(dict(row)) if row else None

    async def list_waiting_approvals(
        self, now: datetime, *, limit: int = 10
    ) -> list[PendingAction]:
        """Actions waiting for a second person's approval, newest first (#26: App Home)."""
        async with translate_errors("reading pending approvals"):
            rows = await self._pool.fetch(
                """
                SELECT * FROM gepetto_pending_actions
                WHERE status = 'pending' AND policy = 'approval' AND expires_at > $1
                ORDER BY created_at DESC LIMIT $2
                """,
                now,
                limit,
            )
        return [PendingAction.model_validate(dict(r)) for r in rows]

    # --- autoscaler mode ----------------------------------------------------------------------
    async def get_autoscaler_mode(self) -> AutoscalerMode:
        async with translate_errors("reading the autoscaler mode"):
            row = await self._pool.fetchrow(
                "SELECT mode, paused_until, updated_by, updated_at FROM gepetto_autoscaler_mode"
            )
        assert row is not None, "migration 0002 inserts the single mode row"
        return AutoscalerMode.model_validate(dict(row))

    async def set_autoscaler_mode(
        self, mode: AutoscalerModeName, by: str, paused_until: datetime | None = None
    ) -> AutoscalerMode:
        async with translate_errors("setting the autoscaler mode"):
            row = await self._pool.fetchrow(
                """
                UPDATE gepetto_autoscaler_mode
                SET mode = $1, paused_until = $2, updated_by = $3, updated_at = now()
                RETURNING mode, paused_until, updated_by, updated_at
                """,
                mode,
                paused_until if mode == "paused" else None,
                by,
            )
        assert row is not None
        return AutoscalerMode.model_validate(dict(row))

    # --- posted alerts (dedupe key -> chat message) ---------------------------------------------
    # The bot's alerts (bot/alerts): an alert already posted is edited, not reposted.
    async def get_alert(self, alert_key: str) -> AlertRecord | None:
        async with translate_errors("reading an alert"):
            row = await self._pool.fetchrow(
                "SELECT * FROM gepetto_alerts WHERE alert_key = $1", alert_key
            )
        return AlertRecord.model_validate(dict(row)) if row else None

    async def list_alerts(
        self, *, state: str | None = None, since: datetime | None = None
    ) -> list[AlertRecord]:
        """Alerts last seen at or after `since` (all if None), optionally in one state."""
        async with translate_errors("reading alerts"):
            rows = await self._pool.fetch(
                """
                SELECT * FROM gepetto_alerts
                WHERE ($1::varchar IS NULL OR state = $1)
                  AND ($2::timestamptz IS NULL OR last_at >= $2)
                ORDER BY first_at
                """,
                state,
                since,
            )
        return [AlertRecord.model_validate(dict(r)) for r in rows]

    async def save_alert(self, alert: AlertRecord) -> None:
        """Insert or replace the row for `alert.alert_key`."""
        async with translate_errors("saving an alert"):
            await self._pool.execute(
                """
                INSERT INTO gepetto_alerts
                    (alert_key, channel, message_ts, thread_ts, state, occurrences, first_at,
                     last_at, payload)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (alert_key) DO UPDATE SET
                    channel = EXCLUDED.channel, message_ts = EXCLUDED.message_ts,
                    thread_ts = EXCLUDED.thread_ts, state = EXCLUDED.state,
                    occurrences = EXCLUDED.occurrences, first_at = EXCLUDED.first_at,
                    last_at = EXCLUDED.last_at, payload = EXCLUDED.payload
                """,
                alert.alert_key,
                alert.channel,
                alert.message_ts,
                alert.thread_ts,
                alert.state,
                alert.occurrences,
                alert.first_at,
                alert.last_at,
                alert.payload,
            )

    # --- removals the validator asked for and a deferred undeploy held up --------------------
    async def request_server_removal(self, server_id: str, reason: str) -> bool:
        """Record that the server is to go once its deployments are removed (kept until the
        server row is deleted). False: no such server row."""
        return await self._request_removal(_SERVER_REMOVALS, server_id, reason)

    async def list_server_removals(self) -> dict[str, str]:
        """Server id -> why it is to be removed."""
        return await self._list_removals(_SERVER_REMOVALS)

    async def request_chute_removal(self, chute_id: str, reason: str) -> bool:
        """Record that the chute is to go once its deployments are removed (kept until the
        chute row is deleted). False: no such chute row."""
        return await self._request_removal(_CHUTE_REMOVALS, chute_id, reason)

    async def list_chute_removals(self) -> dict[str, str]:
        """Chute id -> why it is to be removed."""
        return await self._list_removals(_CHUTE_REMOVALS)

    async def _request_removal(self, kind: _Removals, key: str, reason: str) -> bool:
        # One statement: the request is made only while the row exists, the first reason stays.
        async with translate_errors(f"recording a {kind.noun} removal"):
            exists = await self._pool.fetchval(
                f"""
                WITH added AS (
                    INSERT INTO {kind.table} ({kind.key}, reason)
                    SELECT {kind.key}, $2 FROM {kind.rows} WHERE {kind.key} = $1
                    ON CONFLICT ({kind.key}) DO NOTHING
                )
                SELECT EXISTS (SELECT 1 FROM {kind.rows} WHERE {kind.key} = $1)
                """,
                key,
                reason,
            )
        return bool(exists)

    async def _list_removals(self, kind: _Removals) -> dict[str, str]:
        async with translate_errors(f"listing {kind.noun} removals"):
            rows = await self._pool.fetch(f"SELECT {kind.key}, reason FROM {kind.table}")
        return {r[kind.key]: r["reason"] for r in rows}
