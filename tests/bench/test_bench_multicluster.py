"""The multicluster benchmark end to end on a small world (6 server clusters, the sandbox in its
own process, a fresh database): the rounds it times are converged and complete, and the
hanging clusters are read as unknown, not empty. What it measures is not asserted."""

from __future__ import annotations

import pytest

import bench.bench_multicluster as bench_multicluster


async def test_a_small_world_is_converged_and_the_hanging_clusters_are_unknown(
    pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_multicluster, "SERVER", pg_server)
    figures = await bench_multicluster.run(servers=6, per_server=1, rounds=1, cluster_timeout=1.0)

    assert figures["servers"] == 6 and figures["gpus_per_server"] == 8
    assert figures["deployments"] == 6
    for source in ("monitor", "direct"):
        measured = figures[source]
        assert measured["plan_complete"], measured["problems"]
        assert measured["planned_actions"] == {}, measured  # converged: nothing to do
        assert len(measured["seconds_all"]) == 1
    hanging = figures["direct"]["hanging"]
    assert not hanging["plan_complete"]
    [problem] = hanging["problems"]
    assert f"{bench_multicluster.HANGING} cluster(s) not read" in problem
    assert all(name in problem for name in hanging["clusters"])
    assert hanging["planned_actions"] == {}  # nothing on them removed
