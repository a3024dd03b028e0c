"""API semantics independent of HTTP: create / get / list / replace / patch / delete with
admission, resourceVersion checks and propagation policies."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from gepetto_core.errors import InvalidInputError
from gepetto_sandbox.cluster.admission import Admission
from gepetto_sandbox.cluster.controllers import NAMESPACES, PODS, Controllers
from gepetto_sandbox.cluster.patching import json_patch, merge_patch
from gepetto_sandbox.cluster.resources import RESOURCES, ResourceType
from gepetto_sandbox.cluster.script import PodTimings
from gepetto_sandbox.cluster.selectors import object_matcher
from gepetto_sandbox.cluster.store import Obj, StatusError, Store, already_exists, not_found

MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
JSON_PATCH_TYPE = "application/json-patch+json"


class ClusterCore:
    def __init__(self, seed: int = 0, timings: PodTimings | None = None, history: int = 2000):
        self.store = Store(history_size=history)
        self.admission = Admission(seed)
        self.controllers = Controllers(self.store, self.admission, timings or PodTimings(), seed)

    # -- reads ---------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return self.store.get(rt, namespace, name)

    def select(
        self, rt: ResourceType, namespace: str | None, labels: str | None, fields: str | None
    ) -> tuple[list[Obj], int]:
        matcher = _matcher(labels, fields)
        return self.store.list(rt, namespace, matcher), self.store.resource_version

    # -- writes --------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str | None, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise StatusError(400, "BadRequest", "the request body must be a JSON object")
        ns = ""
        if rt.namespaced:
            ns = namespace or body.get("metadata", {}).get("namespace") or "default"
            if self.store.find(NAMESPACES, "", ns) is None:
                raise not_found(NAMESPACES, ns)
        name = body.get("metadata", {}).get("name")
        if name and self.store.find(rt, ns, name) is not None:
            # Checked before admission, which would otherwise re-allocate the live object's
            # node ports.
            raise already_exists(rt, name)
        obj = self.admission.prepare_create(rt, namespace, body)
        return self.store.create(rt, obj)

    def replace(
        self, rt: ResourceType, namespace: str, name: str, body: Any, subresource: str | None
    ) -> Obj:
        if not isinstance(body, dict):
            raise StatusError(400, "BadRequest", "the request body must be a JSON object")
        current = self.store.get(rt, namespace, name)
        if body.get("metadata", {}).get("name", name) != name:
            raise StatusError(400, "BadRequest", "the name of the object does not match the URL")
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["name"] = name
        if rt.namespaced:
            body["metadata"]["namespace"] = namespace
        expected = body["metadata"].get("resourceVersion")
        return self._store_update(rt, current, body, subresource, expected)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        content_type: str,
        subresource: str | None,
    ) -> Obj:
        current = self.store.get(rt, namespace, name)
        try:
            if content_type in MERGE_TYPES:
                if not isinstance(body, dict):
                    raise InvalidInputError("a merge patch must be a JSON object")
                patched = merge_patch(current, body)
            elif content_type == JSON_PATCH_TYPE:
                if not isinstance(body, list):
                    raise InvalidInputError("a JSON patch must be a list of operations")
                patched = json_patch(current, body)
            else:
                raise StatusError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join((*MERGE_TYPES, JSON_PATCH_TYPE))}",
                )
        except InvalidInputError as e:
            raise StatusError(422, "Invalid", str(e)) from e
        patched.setdefault("metadata", {})["name"] = name
        expected = (
            body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        )
        return self._store_update(rt, current, patched, subresource, expected)

    def _store_update(
        self,
        rt: ResourceType,
        current: Obj,
        new: Obj,
        subresource: str | None,
        expected: str | None,
    ) -> Obj:
        if subresource == "status":
            new = current | {"status": new.get("status", {})}
        elif subresource is None and "status" in current and rt.plural != "nodes":
            new = new | {"status": current["status"]}  # the main resource ignores status writes
        new = self.admission.prepare_update(rt, current, new)
        return self.store.update(rt, new, expected_rv=expected)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        propagation: str | None = None,
        grace: int | None = None,
    ) -> Obj | None:
        """Returns the object while its deletion is in progress, None once it is gone."""
        if rt.plural == "pods":
            return self.controllers.delete_pod(namespace, name, grace)
        if rt.plural == "jobs":
            # batch/v1 Jobs orphan their pods unless told otherwise (kubectl says Background).
            return self.controllers.delete_job(namespace, name, propagation or "Orphan", grace)
        if rt.plural == "namespaces":
            for other in RESOURCES:
                if other.namespaced:
                    for obj in self.store.list(other, name, lambda o: True):
                        with contextlib.suppress(StatusError):
                            self.delete(other, name, obj["metadata"]["name"], "Background", 0)
        if rt.plural == "deployments" and propagation == "Foreground":
            return self.controllers.delete_foreground(rt, namespace, name, grace)
        removed = self.store.remove(rt, namespace, name)
        self.admission.released(rt, removed)
        if rt.plural == "deployments" and propagation != "Orphan":
            self._delete_owned(removed, namespace)
        return None

    def _delete_owned(self, owner: Obj, namespace: str) -> None:
        uid = owner["metadata"]["uid"]
        for pod in self.store.list(PODS, namespace, lambda o: True):
            if any(r.get("uid") == uid for r in pod["metadata"].get("ownerReferences", []) or []):
                with contextlib.suppress(StatusError):
                    self.controllers.delete_pod(namespace, pod["metadata"]["name"], None)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: str | None,
        fields: str | None,
        propagation: str | None,
        grace: int | None,
    ) -> list[Obj]:
        deleted = []
        for obj in self.store.list(rt, namespace, _matcher(labels, fields)):
            meta = obj["metadata"]
            with contextlib.suppress(StatusError):
                self.delete(rt, meta.get("namespace", ""), meta["name"], propagation, grace)
                deleted.append(obj)
        return deleted


def _matcher(labels: str | None, fields: str | None) -> Any:
    try:
        return object_matcher(labels, fields)
    except InvalidInputError as e:
        raise StatusError(400, "BadRequest", str(e)) from e
