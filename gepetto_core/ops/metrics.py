"""Prometheus metrics, on a private registry.

Every metric lives in a `Metrics` bundle bound to its own `CollectorRegistry` (not the library's
global one), so tests can build a fresh bundle and two bundles never collide. Call sites use the
process-wide bundle `METRICS`:

    from gepetto_core.ops.metrics import METRICS

    METRICS.deploys.labels(outcome="started").inc()
    with METRICS.time_loop("reconcile"):
        await reconciler.run_once()
    with METRICS.kube_call("list_namespaced_job"):
        ...

Label values come from small fixed sets (loop names, outcomes, API operation names, error class
names): never ids, names or free text, which would make the series count unbounded. Front ends
register their own metrics on `METRICS.registry` (the Slack bot's are in bot/metrics.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "METRICS", "Metrics"]

# Loops take seconds to minutes; API calls take milliseconds to seconds.
LOOP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """All of gepetto's metric objects, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.loop_duration = Histogram(
            "gepetto_loop_duration_seconds",
            "Duration of one pass of a background loop.",
            ["loop"],
            buckets=LOOP_BUCKETS,
            registry=r,
        )
        self.loop_runs = Counter(
            "gepetto_loop_runs_total",
            "Passes of a background loop, by outcome (ok, error).",
            ["loop", "outcome"],
            registry=r,
        )
        self.decisions = Counter(
            "gepetto_decisions_total",
            "Scheduling decisions (autoscale, reconcile, recycle, button), by outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.deploys = Counter(
            "gepetto_deploys_total",
            "Deploy attempts, by outcome (started, failed, rolled_back, no_capacity, ...).",
            ["outcome"],
            registry=r,
        )
        self.undeploys = Counter(
            "gepetto_undeploys_total",
            "Undeploys, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.validator_latency = Histogram(
            "gepetto_validator_request_seconds",
            "Validator API call latency.",
            ["operation"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.validator_errors = Counter(
            "gepetto_validator_errors_total",
            "Failed validator API calls, by error class.",
            ["operation", "error"],
            registry=r,
        )
        self.kube_latency = Histogram(
            "gepetto_kube_request_seconds",
            "Kubernetes API call latency.",
            ["operation"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.kube_errors = Counter(
            "gepetto_kube_errors_total",
            "Failed Kubernetes API calls, by error class.",
            ["operation", "error"],
            registry=r,
        )
        self.leader = Gauge(
            "gepetto_leader",
            "1 while this process holds the leader lease (or runs without election), else 0.",
            registry=r,
        )
        self.leader_transitions = Counter(
            "gepetto_leader_transitions_total",
            "Times this process started (acquired) or stopped (lost, released) leading.",
            ["change"],
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "gepetto_event_loop_lag_seconds",
            "How late the last event-loop heartbeat woke up.",
            registry=r,
        )

    # -- helpers for call sites -----------------------------------------------------------
    @contextlib.contextmanager
    def time_loop(
        self, loop: str, clock: Callable[[], float] = time.perf_counter
    ) -> Iterator[None]:
        """Time one loop pass and count it as ok or error (the error still propagates)."""
        start = clock()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.loop_duration.labels(loop=loop).observe(clock() - start)
            self.loop_runs.labels(loop=loop, outcome=outcome).inc()

    @contextlib.contextmanager
    def kube_call(self, operation: str) -> Iterator[None]:
        """Time one Kubernetes API call; count it by error class when it raises."""
        with _timed(self.kube_latency, self.kube_errors, operation):
            yield

    @contextlib.contextmanager
    def validator_request(self, operation: str) -> Iterator[None]:
        """Time one validator API call; count it by error class when it raises."""
        with _timed(self.validator_latency, self.validator_errors, operation):
            yield

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        self.leader_transitions.labels(change="started" if leading else "stopped").inc()

    def render(self) -> bytes:
        """The text exposition format of everything on this registry."""
        return generate_latest(self.registry)


@contextlib.contextmanager
def _timed(histogram: Histogram, errors: Counter, operation: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception as e:
        errors.labels(operation=operation, error=type(e).__name__).inc()
        raise
    finally:
        histogram.labels(operation=operation).observe(time.perf_counter() - start)


METRICS = Metrics()
