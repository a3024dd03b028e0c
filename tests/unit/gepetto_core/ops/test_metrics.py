"""The metric bundle: private registries, and the helpers call sites use."""

from __future__ import annotations

import pytest

from gepetto_core.ops.metrics import METRICS, Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_bundles_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()  # the second would raise "Duplicated timeseries" if shared
    a.deploys.labels(outcome="started").inc()
    assert value(a, "gepetto_deploys_total", outcome="started") == 1
    assert value(b, "gepetto_deploys_total", outcome="started") is None
    assert METRICS.registry is not a.registry


def test_time_loop_counts_ok_and_error_and_keeps_the_error() -> None:
    m = Metrics()
    ticks = iter([10.0, 12.5, 20.0, 21.0])
    clock = lambda: next(ticks)  # noqa: E731
    with m.time_loop("reconcile", clock=clock):
        pass
    with pytest.raises(RuntimeError), m.time_loop("reconcile", clock=clock):
        raise RuntimeError("boom")
    assert value(m, "gepetto_loop_runs_total", loop="reconcile", outcome="ok") == 1
    assert value(m, "gepetto_loop_runs_total", loop="reconcile", outcome="error") == 1
    assert value(m, "gepetto_loop_duration_seconds_sum", loop="reconcile") == 3.5
    assert value(m, "gepetto_loop_duration_seconds_count", loop="reconcile") == 2


def test_call_timers_count_errors_by_class() -> None:
    m = Metrics()
    with m.validator_request("stream_chutes"):
        pass
    with pytest.raises(ConnectionError), m.validator_request("stream_chutes"):
        raise ConnectionError
    labels = {"operation": "stream_chutes"}
    assert value(m, "gepetto_validator_request_seconds_count", **labels) == 2
    assert value(m, "gepetto_validator_errors_total", error="ConnectionError", **labels) == 1


def test_leader_gauge_and_transitions() -> None:
    m = Metrics()
    m.set_leader(True)
    m.set_leader(False)
    m.set_leader(True)
    assert value(m, "gepetto_leader") == 1
    assert value(m, "gepetto_leader_transitions_total", change="started") == 2
    assert value(m, "gepetto_leader_transitions_total", change="stopped") == 1
    assert b"gepetto_leader 1.0" in m.render()
