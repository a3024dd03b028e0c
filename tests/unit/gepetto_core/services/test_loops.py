"""A background loop survives its own failures, expected or not, and stops when told."""

from __future__ import annotations

import asyncio

from gepetto_core.errors import StoreError
from gepetto_core.services.loops import every


async def test_a_loop_goes_on_after_errors_and_bugs() -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("database restarting")
        if len(calls) == 2:
            raise KeyError("a bug")
        if len(calls) == 4:
            stop.set()

    await asyncio.wait_for(every(0.001, stop, work, "test"), timeout=60)  # a hang detector
    assert len(calls) == 4
