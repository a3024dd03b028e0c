"""The demo console's alerts: a cluster going unreachable is said once (with why), its return
once, and a cluster that stays down is not repeated every pass."""

from __future__ import annotations

from gepetto_core.models.cluster import ClusterHealth
from gepetto_core.scheduling.reconcile_actions import ReconcilePlan
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_sandbox.demo import ConsoleObserver


def report(**states: str) -> ReconcileReport:
    health = [
        ClusterHealth(
            name=name,
            state=state,  # type: ignore[arg-type]
            source="direct",
            error="connection refused" if state == "unreachable" else None,
        )
        for name, state in states.items()
    ]
    return ReconcileReport(plan=ReconcilePlan(), health=health)


async def test_cluster_alerts_on_the_console() -> None:
    lines: list[str] = []
    console = ConsoleObserver(lines.append)
    await console.reconciled(report(a="reachable", b="reachable"))
    assert lines == []
    await console.reconciled(report(a="unreachable", b="reachable"))
    await console.reconciled(report(a="unreachable", b="reachable"))  # still down: quiet
    await console.reconciled(report(a="reachable", b="reachable"))
    assert len(lines) == 2, lines
    assert lines[0].startswith("[alert] cluster a unreachable") and "refused" in lines[0]
    assert lines[1] == "[alert] cluster a reachable again"
