"""The failure ledger as the pure back-off rules read it."""

from __future__ import annotations

from datetime import datetime

from gepetto_core.models.state import LedgerEntry
from gepetto_core.scheduling.snapshot import FailureRecord
from gepetto_core.services.ports import StateStore


def failure_record(entry: LedgerEntry) -> FailureRecord:
    # A forgiven failure (operator cleared the back-off) no longer counts.
    return FailureRecord(
        deployment_id=entry.deployment_id,
        chute_id=entry.chute_id,
        server_id=entry.server_id,
        gpu_type=entry.gpu_type,
        created_at=entry.created_at,
        ended_at=entry.ended_at,
        reason=entry.end_reason or "",
        counted=entry.counts_as_failure and entry.forgiven_at is None,
        activated_at=entry.activated_at,
        forgiven=entry.forgiven_at is not None,
    )


async def load_failure_records(
    state: StateStore, since: datetime | None = None
) -> list[FailureRecord]:
    return [failure_record(e) for e in await state.list_ledger(since)]
