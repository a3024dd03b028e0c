"""Faults the sandbox can inject per route, for tests and the demo: an error status, a delay
(a long one is a hang), a stream cut mid-way, or a malformed stream line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Route names accepted by ``FaultBook.set`` (and ``/_sandbox/faults/{route}``).
ROUTES = frozenset(
    {
        "chutes",
        "chute",
        "images",
        "nodes",
        "instances",
        "metrics",
        "jobs",
        "active_instances",
        "servers",
        "utilization",
        "rolling_updates",
        "bounties",
        "launch_config",
        "delete_instance",
        "delete_node",
        "delete_server",
        "release_job",
        "announce",
        "activate",
        "socket",
    }
)


@dataclass(frozen=True, slots=True)
class Fault:
    status: int | None = None  # answer with this HTTP status instead
    delay: float = 0.0  # seconds to wait before answering
    truncate_after: int | None = None  # streams: cut the connection mid-line after N items
    bad_line_after: int | None = None  # streams: send a malformed line after N items
    times: int | None = None  # number of requests affected; None = until cleared

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = {"status", "delay", "truncate_after", "bad_line_after", "times"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


class FaultBook:
    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}

    def set(self, route: str, fault: Fault) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: {sorted(ROUTES)}")
        self._faults[route] = fault

    def clear(self, route: str | None = None) -> None:
        if route is None:
            self._faults.clear()
        else:
            self._faults.pop(route, None)

    def take(self, route: str) -> Fault | None:
        """The fault for this request, if any (counting down a limited one)."""
        fault = self._faults.get(route)
        if fault is None:
            return None
        if fault.times is not None:
            if fault.times <= 1:
                del self._faults[route]
            else:
                self._faults[route] = replace(fault, times=fault.times - 1)
        return fault
