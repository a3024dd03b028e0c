"""Cluster reachability alerts, pure: one per kind of change, grouped, never repeated."""

from __future__ import annotations

from gepetto_core.models.cluster import ClusterHealth, ClusterState
from gepetto_core.scheduling.cluster_alerts import ClusterAlert, cluster_health_alerts


def health(
    state: ClusterState = "reachable", *names: str, error: str | None = None
) -> list[ClusterHealth]:
    return [ClusterHealth(name=n, state=state, source="direct", error=error) for n in names]


UP = health("reachable", "gpu-1", "gpu-2", "gpu-7", "gpu-9")


def test_nothing_changes_nothing_is_said() -> None:
    alerts, memory = cluster_health_alerts({}, UP)
    assert alerts == [] and memory == {n: False for n in ("gpu-1", "gpu-2", "gpu-7", "gpu-9")}
    assert cluster_health_alerts(memory, UP)[0] == []


def test_many_clusters_going_at_once_are_one_alert() -> None:
    _, memory = cluster_health_alerts({}, UP)
    now = [*health("unreachable", "gpu-7", "gpu-2", "gpu-1", error="timed out"), UP[3]]
    [alert], memory = cluster_health_alerts(memory, now)
    assert alert.kind == "unreachable" and alert.names == ["gpu-1", "gpu-2", "gpu-7"]
    assert alert.text == "3 clusters unreachable: gpu-1, gpu-2, gpu-7 — timed out"
    # the same state again: no new alert
    assert cluster_health_alerts(memory, now)[0] == []
    # they come back: one alert
    [back], memory = cluster_health_alerts(memory, UP)
    assert back.kind == "back" and back.text == "3 clusters reachable again: gpu-1, gpu-2, gpu-7"
    assert cluster_health_alerts(memory, UP)[0] == []


def test_reasons_are_grouped_and_said_once() -> None:
    now = [
        *health("unreachable", "gpu-1", "gpu-2", error="timed out"),
        *health("unreachable", "gpu-7", error="connection refused"),
    ]
    [alert], _ = cluster_health_alerts({}, now)
    assert alert.text == (
        "3 clusters unreachable: gpu-1, gpu-2 — timed out; gpu-7 — connection refused"
    )


def test_first_read_announces_the_down_but_no_back() -> None:
    """After a start the memory is empty: a cluster found down is news, a cluster found up is
    not (it was never seen down)."""
    now = [*health("unreachable", "gpu-2", error="timed out"), *health("reachable", "gpu-1")]
    [alert], _ = cluster_health_alerts({}, now)
    assert alert == ClusterAlert("unreachable", (("gpu-2", "timed out"),))
    assert alert.text == "cluster gpu-2 unreachable — timed out"


def test_unknown_keeps_what_was_known_and_a_removed_cluster_is_forgotten() -> None:
    _, memory = cluster_health_alerts({}, health("unreachable", "gpu-1", error="timed out"))
    alerts, memory = cluster_health_alerts(memory, health("unknown", "gpu-1"))
    assert alerts == [] and memory == {"gpu-1": True}
    [back], memory = cluster_health_alerts(memory, health("reachable", "gpu-1"))
    assert back.text == "cluster gpu-1 reachable again"
    _, memory = cluster_health_alerts({"gpu-5": True}, health("reachable", "gpu-1"))
    assert memory == {"gpu-1": False}


def test_down_and_back_in_one_pass_are_two_alerts() -> None:
    _, memory = cluster_health_alerts({}, health("unreachable", "gpu-1", error="timed out"))
    now = [*health("reachable", "gpu-1"), *health("unreachable", "gpu-2", error="refused")]
    alerts, _ = cluster_health_alerts(memory, now)
    assert [(a.kind, a.names) for a in alerts] == [("unreachable", ["gpu-2"]), ("back", ["gpu-1"])]


def test_the_single_layout_cluster_is_the_cluster() -> None:
    [down], memory = cluster_health_alerts({}, health("unreachable", "*", error="refused"))
    assert down.text == "the cluster is unreachable — refused"
    [back], _ = cluster_health_alerts(memory, health("reachable", "*"))
    assert back.text == "the cluster is reachable again"


def test_a_long_list_is_cut() -> None:
    names = [f"gpu-{i:03d}" for i in range(100)]
    [alert], _ = cluster_health_alerts({}, health("unreachable", *names, error="timed out"))
    assert alert.text.startswith("100 clusters unreachable: gpu-000, gpu-001")
    assert alert.text.endswith("gpu-019 and 80 more — timed out")
