"""Seeded generator of realistic validator catalogs: chutes (with their images), their metrics
and capacity logs, target counts, and other miners' instances.

Everything comes from the ``random.Random`` passed in, so a seed gives the same fleet every time.
Shapes follow `docs/protocol.md#read-endpoints`; magnitudes are modelled on the public chutes.ai
fleet (most chutes are small vLLM/diffusion templates with a few KB of code; a few carry >100 KB).
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from gepetto_sandbox.validator.gpus import full_selector

MAX_CODE_CHARS = 150_000

_FAMILIES = (
    ("Qwen", "Qwen3", ("0.6B", "4B", "8B", "14B", "32B", "30B-A3B", "235B-A22B")),
    ("deepseek-ai", "DeepSeek", ("V3-0324", "R1-0528", "V3.1", "R1-Distill-Llama-70B")),
    ("meta-llama", "Llama-3.3", ("70B-Instruct", "8B-Instruct")),
    ("mistralai", "Mistral", ("Small-3.2-24B-Instruct", "Nemo-Instruct-2407", "7B-v0.3")),
    ("google", "gemma-3", ("4b-it", "12b-it", "27b-it")),
    ("moonshotai", "Kimi", ("K2-Instruct", "Dev-72B")),
    ("zai-org", "GLM", ("4.5", "4.5-Air", "4.1V-9B")),
    ("stabilityai", "sdxl", ("base-1.0", "turbo")),
    ("black-forest-labs", "FLUX.1", ("dev", "schnell")),
    ("BAAI", "bge", ("m3", "large-en-v1.5", "reranker-v2-m3")),
    ("openai", "whisper", ("large-v3", "medium")),
    ("NousResearch", "Hermes-4", ("70B", "405B")),
)

# (gpu selector, weight): what chutes on the network typically ask for.
_SELECTORS: tuple[tuple[dict[str, Any], float], ...] = (
    ({"gpu_count": 8, "include": ["h200"]}, 0.08),
    ({"gpu_count": 8, "min_vram_gb_per_gpu": 80}, 0.07),
    ({"gpu_count": 4, "min_vram_gb_per_gpu": 80}, 0.06),
    ({"gpu_count": 2, "min_vram_gb_per_gpu": 80}, 0.06),
    ({"gpu_count": 1, "min_vram_gb_per_gpu": 80}, 0.12),
    ({"gpu_count": 1, "include": ["h100", "h100_sxm", "h200"]}, 0.05),
    ({"gpu_count": 1, "include": ["a100", "a100_sxm", "h100"]}, 0.05),
    ({"gpu_count": 1, "min_vram_gb_per_gpu": 48}, 0.15),
    ({"gpu_count": 1, "include": ["l40s", "a6000", "a6000_ada"]}, 0.06),
    ({"gpu_count": 2, "min_vram_gb_per_gpu": 48}, 0.05),
    ({"gpu_count": 1, "min_vram_gb_per_gpu": 24}, 0.15),
    ({"gpu_count": 1, "include": ["4090", "5090"]}, 0.04),
    ({"gpu_count": 1}, 0.06),
)
_TEMPLATES = (("vllm", 0.6), ("diffusion", 0.12), ("embedding", 0.08), ("tei", 0.05), (None, 0.15))


@dataclass
class Catalog:
    chutes: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # chute_id -> row
    capacity_logs: dict[str, dict[str, Any]] = field(default_factory=dict)  # chute_id -> row
    targets: dict[str, int] = field(default_factory=dict)
    other_instances: list[dict[str, Any]] = field(default_factory=list)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def _uuid5(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, text))


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fake_hotkey(rng: random.Random) -> str:
    """An ss58-looking string (never signs anything)."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    return "5" + "".join(rng.choice(alphabet) for _ in range(47))


def code_size(rng: random.Random) -> int:
    """Chute source length: log-normal around ~4 KB, a tail of big custom chutes, capped."""
    if rng.random() < 0.04:
        return rng.randint(60_000, MAX_CODE_CHARS)
    return max(400, min(MAX_CODE_CHARS, int(rng.lognormvariate(8.3, 0.9))))


def make_code(rng: random.Random, name: str, size: int) -> str:
    header = (
        f'"""Chute for {name}."""\n'
        "from chutes.chute import NodeSelector\n"
        "from chutes.chute.template.vllm import build_vllm_chute\n\n"
    )
    block = (
        f"# tuning table {rng.randrange(1 << 30):08x}\n"
        "def handler_{i}(payload: dict) -> dict:\n"
        "    tokens = payload.get('prompt', '').split()\n"
        "    return {'n': len(tokens), 'i': {i}}\n\n"
    )
    parts = [header]
    length = len(header)
    i = 0
    while length < size:
        piece = block.replace("{i}", str(i))
        parts.append(piece)
        length += len(piece)
        i += 1
    return "".join(parts)[:size]


def _weighted(rng: random.Random, options: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _cords(template: str | None) -> list[dict[str, Any]]:
    path = {"vllm": "/v1/chat/completions", "diffusion": "/generate"}.get(template or "", "/run")
    return [
        {
            "method": "POST",
            "path": path,
            "function": "run",
            "stream": template == "vllm",
            "passthrough": template == "vllm",
            "public_api_path": path,
            "public_api_method": "POST",
        }
    ]


class ImageDraw(NamedTuple):
    """One chute's image as drawn: its row for the image list and what the chute row reuses."""

    row: dict[str, Any]
    ref: str  # what the chute's `image` field says (with the patch suffix)
    name: str  # the chute's name
    family: str
    username: str
    chutes_version: str
    created: datetime


@dataclass(frozen=True)
class Shares:
    """Fractions of the catalog that are TEE, legacy, private and job-only chutes."""

    tee: float
    legacy: float
    private: float
    job_only: float


def generate_catalog(
    rng: random.Random,
    n_chutes: int,
    *,
    now: datetime | None = None,
    other_miners: int = 25,
    tee_share: float = 0.03,
    legacy_share: float = 0.04,
    private_share: float = 0.08,
    job_only_share: float = 0.03,
) -> Catalog:
    """`n_chutes` chutes with their images, targets, other miners' instances, capacity logs and
    (for most) metrics. Each step draws from `rng` in a fixed order: one seed, one catalog."""
    now = now or datetime.now(UTC)
    shares = Shares(tee_share, legacy_share, private_share, job_only_share)
    catalog = Catalog()
    hotkeys = [fake_hotkey(rng) for _ in range(other_miners)]
    for index in range(n_chutes):
        image = _draw_image(rng, index, now, shares)
        catalog.images.append(image.row)
        chute = _draw_chute(rng, image, shares)
        catalog.chutes.append(chute)
        chute_id = chute["chute_id"]
        public = chute["public"]
        target = rng.choice((1, 2, 3, 5, 5, 8, 10, 15, 25)) if public else rng.randint(0, 2)
        catalog.targets[chute_id] = target
        others = min(target, max(0, int(rng.gauss(target * 0.8, 2))))
        job_only = chute["jobs"] is not None
        for _ in range(0 if job_only else others):
            catalog.other_instances.append(_draw_other_instance(rng, chute, hotkeys, now))
        if job_only:
            continue
        log = _draw_capacity_log(rng, now)
        catalog.capacity_logs[chute_id] = log
        if rng.random() < 0.7:
            selector = chute["node_selector"]
            catalog.metrics[chute_id] = _draw_metrics(rng, chute_id, selector, log, others, now)
    return catalog


def _draw_image(rng: random.Random, index: int, now: datetime, shares: Shares) -> ImageDraw:
    owner, family, sizes = rng.choice(_FAMILIES)
    name = f"chutes/{owner}/{family}-{rng.choice(sizes)}-{index:05d}"
    username = "chutes" if rng.random() < 0.8 else f"user{rng.randrange(500)}"
    legacy = rng.random() < shares.legacy
    chutes_version = f"0.2.{rng.randint(40, 60)}" if legacy else f"0.3.{rng.randint(0, 61)}"
    tag = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    image_name = f"{family.lower()}-{index:05d}"
    image_id = _uuid5(f"{username.lower()}/{image_name}:{tag}")
    patch = "initial" if rng.random() < 0.7 else f"{rng.getrandbits(48):012x}"
    created = now - timedelta(hours=rng.uniform(4, 24 * 120))
    row = {
        "image_id": image_id,
        "user_id": _uuid5(username),
        "username": username,
        "name": image_name,
        "tag": tag,
        "readme": "",
        "logo_id": None,
        "public": True,
        "status": "built and pushed",
        "created_at": iso(created),
        "chutes_version": chutes_version,
        "patch_version": patch,
        "build_started_at": iso(created),
        "build_completed_at": iso(created + timedelta(minutes=rng.uniform(3, 40))),
    }
    ref = f"{username}/{image_name}:{tag}" + ("" if patch == "initial" else f"-{patch}")
    return ImageDraw(row, ref, name, family, username, chutes_version, created)


# The job a job-only chute declares (and nothing else).
_TRAIN_JOB: dict[str, Any] = {
    "name": "train",
    "upload": False,
    "timeout": 3600,
    "disk_gb": 100,
    "ports": [{"name": "ssh", "port": 2202, "default": True, "proto": "tcp"}],
}


def _draw_chute(rng: random.Random, image: ImageDraw, shares: Shares) -> dict[str, Any]:
    selector = full_selector(_weighted(rng, _SELECTORS))
    template = _weighted(rng, _TEMPLATES)
    job_only = rng.random() < shares.job_only
    public = rng.random() >= shares.private
    name, username, created = image.name, image.username, image.created
    image_id = image.row["image_id"]
    code = make_code(rng, name, code_size(rng))
    return {
        "chute_id": _uuid5(f"{username}::chute::{name}"),
        "user_id": _uuid5(username),
        "name": name,
        "tagline": f"{image.family} served by chutes",
        "readme": "",
        "tool_description": None,
        "image_id": image_id,
        "image": image.ref,
        "logo_id": None,
        "public": public,
        "standard_template": template,
        "cords": [] if job_only else _cords(template),
        "jobs": [copy.deepcopy(_TRAIN_JOB)] if job_only else None,
        "node_selector": selector,
        "slug": name.split("/")[-1].lower(),
        "code": code,
        "filename": "chute.py",
        "ref_str": "chute:chute",
        "version": _uuid5(f"{image_id}:{code}"),
        "concurrency": rng.choice((8, 16, 32, 64, 128)),
        "boost": rng.choice((None,) * 8 + (1.5, 3.0)),
        "chutes_version": image.chutes_version,
        "revision": f"{rng.getrandbits(160):040x}",
        "openrouter": rng.random() < 0.2,
        "discount": 0.0,
        "created_at": iso(created),
        "updated_at": iso(created + timedelta(hours=rng.uniform(0, 3))),
        "max_instances": None if public else rng.randint(1, 5),
        "scaling_threshold": 0.75,
        "shutdown_after_seconds": 300 if public else 3600,
        "invocation_count": int(rng.lognormvariate(9, 2.5)),
        "supported_gpus": selector["supported_gpus"],
        "preemptible": public,
        "tee": rng.random() < shares.tee,
    }


def _draw_other_instance(
    rng: random.Random, chute: dict[str, Any], hotkeys: list[str], now: datetime
) -> dict[str, Any]:
    """An instance of `chute` held by another miner, active for up to two days."""
    activated = now - timedelta(minutes=rng.uniform(5, 60 * 48))
    return {
        "instance_id": _uuid4(rng),
        "chute_id": chute["chute_id"],
        "version": chute["version"],
        "miner_hotkey": rng.choice(hotkeys),
        "active": True,
        "verified": True,
        "activated_at": iso(activated),
        "last_verified_at": iso(activated - timedelta(minutes=2)),
        "created_at": iso(activated - timedelta(minutes=5)),
    }


def _draw_capacity_log(rng: random.Random, now: datetime) -> dict[str, Any]:
    util = rng.betavariate(2, 3)
    requests = rng.lognormvariate(6, 2)
    rate_limited = requests * max(0.0, rng.gauss(0.01, 0.03))
    return {
        "timestamp": iso(now - timedelta(minutes=rng.uniform(0, 30))),
        "utilization_current": util,
        "utilization_5m": util,
        "utilization_15m": util,
        "utilization_1h": util,
        "rate_limit_ratio_5m": rate_limited / (requests + rate_limited),
        "rate_limit_ratio_15m": rate_limited / (requests + rate_limited),
        "rate_limit_ratio_1h": rate_limited / (requests + rate_limited),
        "total_requests_5m": requests / 12,
        "total_requests_15m": requests / 4,
        "total_requests_1h": requests,
        "completed_requests_5m": requests / 12,
        "completed_requests_15m": requests / 4,
        "completed_requests_1h": requests,
        "rate_limited_requests_5m": rate_limited / 12,
        "rate_limited_requests_15m": rate_limited / 4,
        "rate_limited_requests_1h": rate_limited,
        "action_taken": "scale_up_candidate" if util > 0.6 else "no_action",
    }


def _draw_metrics(
    rng: random.Random,
    chute_id: str,
    selector: dict[str, Any],
    log: dict[str, Any],
    others: int,
    now: datetime,
) -> dict[str, Any]:
    """The last hour's invocation metrics, consistent with the chute's capacity log."""
    invocations = int(log["total_requests_1h"])
    rate_limited = log["rate_limited_requests_1h"]
    multiplier = float(selector["compute_multiplier"])
    return {
        "chute_id": chute_id,
        "start_date": iso(now - timedelta(hours=1)),
        "end_date": iso(now),
        "compute_multiplier": multiplier,
        "total_invocations": invocations,
        "total_compute_time": invocations * rng.uniform(0.5, 40),
        "error_count": int(invocations * rng.uniform(0, 0.02)),
        "rate_limit_count": int(rate_limited),
        "instance_count": others,
        "per_second_price_usd": multiplier * 4.5 / 3600,
        "total_usage_usd": invocations * rng.uniform(0.0001, 0.01),
    }
