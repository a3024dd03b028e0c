"""The wall clock, in one place: every service and the bot take a `clock` argument that defaults
to `utcnow`, so tests and the demo can pass their own."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC (the database, the validator and Kubernetes all speak UTC)."""
    return datetime.now(UTC)
