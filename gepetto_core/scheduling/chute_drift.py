"""Chute drift: how the local `chutes` row should look given the validator's copy, and which
of its fields differ (compared field by field, not as `str(set(...))`, whose order is not
stable; an image patched by image sync is the expected image, so drift does not flap)."""

from __future__ import annotations

from collections.abc import Mapping

from gepetto_core.models.inventory import Chute
from gepetto_core.models.validator import ValidatorChute, ValidatorImage


def expected_image(chute: ValidatorChute, images: Mapping[str, ValidatorImage]) -> str:
    """The image string the local row should hold: the image list's patched reference when the
    validator lists the chute's image, else the chute's own `image` field."""
    image = images.get(chute.image_id) if chute.image_id else None
    return image.pull_ref if image is not None else chute.image


def chute_differs(local: Chute, remote: ValidatorChute, image: str) -> list[str]:
    """Names of the documented fields that differ between the local row and the remote chute."""
    checks = {
        "version": (local.version, remote.version),
        "name": (local.name, remote.name),
        "image": (local.image, image),
        "code": (local.code, remote.code),
        "ref_str": (local.ref_str, remote.ref_str),
        "preemptible": (local.preemptible, remote.preemptible),
        "gpu_count": (local.gpu_count, remote.gpu_count),
        "chutes_version": (local.chutes_version, remote.chutes_version),
        "supported_gpus": (sorted(set(local.supported_gpus)), sorted(set(remote.supported_gpus))),
        "tee": (local.tee, remote.tee),
    }
    return [name for name, (a, b) in checks.items() if a != b]


def chute_row_from_remote(
    remote: ValidatorChute, validator: str, image: str, local: Chute | None = None
) -> Chute:
    """The local `chutes` row for a validator's chute. An operator's ban survives updates (the
    official miner clears it on every chute_updated, silently lifting the operator's decision)."""
    return Chute(
        chute_id=remote.chute_id,
        validator=validator,
        name=remote.name,
        image=image,
        code=remote.code,
        filename=remote.filename,
        ref_str=remote.ref_str,
        version=remote.version,
        supported_gpus=list(remote.supported_gpus),
        gpu_count=remote.gpu_count,
        chutes_version=remote.chutes_version,
        preemptible=remote.preemptible,
        tee=remote.tee,
        ban_reason=local.ban_reason if local else None,
    )
