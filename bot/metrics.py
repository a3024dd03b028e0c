"""The Slack bot's metrics, on the process's registry (`gepetto_core.ops.metrics.METRICS`), so
`/metrics` serves them with the core's."""

from __future__ import annotations

from prometheus_client import Histogram

from gepetto_core.ops.metrics import METRICS

# Slack acks must stay well under Slack's 3-second limit: finest below 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5)

SLACK_ACK = Histogram(
    "gepetto_slack_ack_seconds",
    "Time from receiving a Slack request to acknowledging it.",
    ["kind"],
    buckets=ACK_BUCKETS,
    registry=METRICS.registry,
)
