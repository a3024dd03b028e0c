"""The validator's GPU price table and the node-selector arithmetic built on it
(`docs/protocol.md#multipliers`). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class GpuType:
    short_id: str
    memory_gb: int
    hourly_rate: float
    model_name: str


def _table() -> Mapping[str, GpuType]:
    rows: Sequence[tuple[str, int, float, str]] = (
        ("b200", 192, 4.5, "NVIDIA B200"),
        ("mi300x", 192, 3.0, "AMD Instinct MI300X"),
        ("h200", 140, 2.75, "NVIDIA H200"),
        ("h100_sxm", 80, 2.35, "NVIDIA H100 80GB HBM3"),
        ("h100_nvl", 96, 2.25, "NVIDIA H100 NVL"),
        ("pro_6000", 96, 1.8, "NVIDIA RTX PRO 6000 Blackwell"),
        ("h100", 80, 1.79, "NVIDIA H100 PCIe"),
        ("h800", 80, 1.5, "NVIDIA H800"),
        ("a100_sxm", 80, 1.25, "NVIDIA A100-SXM4-80GB"),
        ("a100", 80, 1.2, "NVIDIA A100 80GB PCIe"),
        ("a100_40gb_sxm", 40, 1.15, "NVIDIA A100-SXM4-40GB"),
        ("a100_40gb", 40, 1.1, "NVIDIA A100-PCIE-40GB"),
        ("l40s", 48, 0.85, "NVIDIA L40S"),
        ("a6000_ada", 48, 0.75, "NVIDIA RTX 6000 Ada Generation"),
        ("5090", 32, 0.7, "NVIDIA GeForce RTX 5090"),
        ("h20", 96, 0.6, "NVIDIA H20"),
        ("l40", 48, 0.55, "NVIDIA L40"),
        ("a6000", 48, 0.5, "NVIDIA RTX A6000"),
        ("a40", 48, 0.5, "NVIDIA A40"),
        ("4090", 24, 0.4, "NVIDIA GeForce RTX 4090"),
        ("3090", 24, 0.25, "NVIDIA GeForce RTX 3090"),
        ("a5000", 24, 0.25, "NVIDIA RTX A5000"),
        ("l4", 24, 0.25, "NVIDIA L4"),
        ("a10", 24, 0.25, "NVIDIA A10"),
        ("a4000_ada", 20, 0.21, "NVIDIA RTX 4000 Ada Generation"),
        ("a4000", 16, 0.2, "NVIDIA RTX A4000"),
    )
    return MappingProxyType({r[0]: GpuType(*r) for r in rows})


GPU_TYPES: Mapping[str, GpuType] = _table()
MAX_HOURLY_RATE = max(g.hourly_rate for g in GPU_TYPES.values())


def supported_gpus(selector: Mapping[str, Any]) -> list[str]:
    """(include or every GPU) - exclude, keeping those with enough memory; sorted."""
    include = selector.get("include") or list(GPU_TYPES)
    exclude = set(selector.get("exclude") or ())
    min_vram = int(selector.get("min_vram_gb_per_gpu", 16))
    return sorted(
        g
        for g in include
        if g in GPU_TYPES and g not in exclude and GPU_TYPES[g].memory_gb >= min_vram
    )


def compute_multiplier(selector: Mapping[str, Any]) -> float:
    """gpu_count x the cheapest allowed GPU's rate, relative to the dearest GPU (b200)."""
    gpus = supported_gpus(selector)
    if not gpus:
        return 0.0
    cheapest = min(GPU_TYPES[g].hourly_rate for g in gpus)
    return int(selector.get("gpu_count", 1)) * cheapest / MAX_HOURLY_RATE


def full_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    """The selector as the validator emits it: stored keys plus the computed ones."""
    out: dict[str, Any] = {
        "gpu_count": 1,
        "min_vram_gb_per_gpu": 16,
        "include": None,
        "exclude": None,
        **selector,
    }
    out["supported_gpus"] = supported_gpus(out)
    out["compute_multiplier"] = compute_multiplier(out)
    return out
