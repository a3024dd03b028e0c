"""Benchmark: one full validator sync of a 5,000-chute catalog with realistic ``code`` sizes.

The sandbox validator runs as its own process (``python -m gepetto_sandbox.validator``) so
this process measures only the miner side. Prints wall time and peak Python memory (tracemalloc)
of ``SyncService.sync_validator`` and, as a baseline measured in the same run, of a naive fetch
that reads the whole ``/miner/chutes/`` body before parsing it. Figures go to
``bench/results.json`` under ``sync`` (read-merge-write; other benchmarks share the file).

    .venv/bin/python bench/bench_sync.py [--chutes 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.results import save_results
from gepetto_core.adapters.signing import HotkeySigner, signed_headers
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.models.validator import ValidatorChute
from gepetto_core.services.sync import SyncService


def start_sandbox(chutes: int, miner: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gepetto_sandbox.validator",
            "--port",
            "0",
            "--chutes",
            str(chutes),
            "--seed",
            "64",
            "--miner",
            miner,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


async def measure(work: Callable[[], Awaitable[Any]]) -> tuple[float, int, Any]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    result = await work()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, result


async def naive_chutes(http: aiohttp.ClientSession, miner: HotkeySigner, url: str) -> int:
    """Baseline: read the whole body, then split and parse (what streaming avoids)."""
    headers = signed_headers(miner, purpose="miner")
    async with http.get(f"{url}/miner/chutes/", headers=headers) as resp:
        body = await resp.read()
    chutes = [
        ValidatorChute.model_validate_json(line[6:])
        for line in body.split(b"\n")
        if line.startswith(b"data: {")
    ]
    return len(chutes)


async def run(chutes: int, rounds: int) -> dict[str, Any]:
    miner = HotkeySigner("//BenchMiner")
    proc, url = start_sandbox(chutes, miner.hotkey)
    try:
        async with aiohttp.ClientSession() as http:
            api = HttpValidatorApi(http, miner, url, "sandbox", stream_timeout=600)
            service = SyncService([api])
            sync_times, sync_peaks, naive_times, naive_peaks = [], [], [], []
            code_bytes = 0
            for _ in range(rounds):
                elapsed, peak, snapshot = await measure(lambda: service.sync_validator("sandbox"))
                assert not snapshot.errors(), snapshot.errors()
                assert len(snapshot.chutes.items) == chutes
                code_bytes = sum(len(c.code) for c in snapshot.chutes.items.values())
                sync_times.append(elapsed)
                sync_peaks.append(peak)
                elapsed, peak, count = await measure(lambda: naive_chutes(http, miner, url))
                assert count == chutes
                naive_times.append(elapsed)
                naive_peaks.append(peak)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    mib = 1024 * 1024
    return {
        "chutes": chutes,
        "rounds": rounds,
        "total_code_mib": round(code_bytes / mib, 1),
        "full_sync_seconds_median": round(statistics.median(sync_times), 3),
        "full_sync_peak_mib": round(max(sync_peaks) / mib, 1),
        "naive_chutes_seconds_median": round(statistics.median(naive_times), 3),
        "naive_chutes_peak_mib": round(max(naive_peaks) / mib, 1),
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "full sync = all 10 lists of one validator, concurrently; naive = /miner/chutes/ "
        "only, whole body read before parsing; peak = tracemalloc peak in the client process",
    }


def save(figures: dict[str, Any]) -> None:
    save_results("sync", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chutes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(run(args.chutes, args.rounds))
    print(f"catalog: {figures['chutes']} chutes, {figures['total_code_mib']} MiB of code")
    print(
        f"full sync (10 lists): {figures['full_sync_seconds_median']:.3f} s median, "
        f"peak {figures['full_sync_peak_mib']} MiB"
    )
    print(
        f"naive whole-body chutes fetch: {figures['naive_chutes_seconds_median']:.3f} s, "
        f"peak {figures['naive_chutes_peak_mib']} MiB "
        f"(streaming peak / naive peak = "
        f"{figures['full_sync_peak_mib'] / max(figures['naive_chutes_peak_mib'], 0.1):.2f})"
    )
    save(figures)


if __name__ == "__main__":
    main()
