"""Server-side strict field validation (`?fieldValidation=Strict`), for the fields the sandbox
knows: each kind's top-level fields and the object metadata. The real API server checks every
nested field against its schema; the `realkube` test tier holds gepetto's objects to that."""

from __future__ import annotations

from typing import Any

from gepetto_sandbox.cluster.resources import ResourceType
from gepetto_sandbox.cluster.store import StatusError

COMMON = frozenset({"apiVersion", "kind", "metadata"})
TOP_LEVEL: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"data", "binaryData", "immutable"}),
}
SPEC_AND_STATUS = frozenset({"spec", "status"})
METADATA = frozenset(
    {
        "name", "generateName", "namespace", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields", "selfLink",
    }
)  # fmt: skip


def unknown_fields(rt: ResourceType, body: dict[str, Any]) -> list[str]:
    allowed = COMMON | TOP_LEVEL.get(rt.kind, SPEC_AND_STATUS)
    unknown = [name for name in body if name not in allowed]
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        unknown += [f"metadata.{name}" for name in metadata if name not in METADATA]
    return unknown


def check_strict(rt: ResourceType, body: Any) -> None:
    """Raise the real API server's 400 for fields the kind does not have."""
    if not isinstance(body, dict):
        return
    unknown = unknown_fields(rt, body)
    if unknown:
        listed = ", ".join(f'unknown field "{name}"' for name in unknown)
        raise StatusError(
            400,
            "BadRequest",
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {listed}",
        )
