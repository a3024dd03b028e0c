"""The sandbox's object store: objects by (resource, namespace, name), one resourceVersion
counter, a bounded event history for watch resumption and in-process subscribers."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gepetto_sandbox.cluster.resources import ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (plural, namespace or "", name)


class StatusError(Exception):
    """An API failure, rendered as a Kubernetes `Status` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> StatusError:
    return StatusError(
        404,
        "NotFound",
        f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def already_exists(rt: ResourceType, name: str) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{rt.plural} "{name}" already exists',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    rv: int
    plural: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    previous: Obj | None


def _without_rv(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return obj | {"metadata": meta}


class Store:
    def __init__(self, history_size: int = 2000) -> None:
        self._objects: dict[Key, Obj] = {}
        self._rv = 1
        self._history: deque[Event] = deque(maxlen=history_size)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    # -- versions & events ----------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def oldest_resumable_rv(self) -> int:
        """A watch may resume from any RV ≥ this; older ones get 410 Expired."""
        if self._history and len(self._history) == self._history.maxlen:
            return self._history[0].rv - 1
        return 0

    def events_since(self, rv: int, plural: str) -> list[Event]:
        return [e for e in self._history if e.rv > rv and e.plural == plural]

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def close_subscribers(self, keep: Collection[asyncio.Queue[Event | None]] = ()) -> None:
        for queue in self._subscribers:
            if queue not in keep:
                queue.put_nowait(None)

    def _emit(self, plural: str, kind: str, obj: Obj, previous: Obj | None) -> None:
        event = Event(self._rv, plural, kind, copy.deepcopy(obj), previous)
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _bump(self, obj: Obj) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    # -- reads ----------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects.get((rt.plural, namespace if rt.namespaced else "", name))
        if obj is None:
            raise not_found(rt, name)
        return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get((rt.plural, namespace if rt.namespaced else "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, rt: ResourceType, namespace: str | None, matches: Callable[[Obj], bool]
    ) -> list[Obj]:
        found = [
            copy.deepcopy(obj)
            for (plural, ns, _), obj in self._objects.items()
            if plural == rt.plural and (namespace is None or ns == namespace) and matches(obj)
        ]
        found.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return found

    def iter_raw(self, plural: str) -> Iterator[Obj]:
        """Live objects of a kind (no copies): for controllers that only read."""
        return iter([o for (p, _, _), o in self._objects.items() if p == plural])

    # -- writes ---------------------------------------------------------------------
    def create(self, rt: ResourceType, obj: Obj, *, preserve_uid: bool = False) -> Obj:
        meta = obj.setdefault("metadata", {})
        key = (rt.plural, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        if key in self._objects:
            raise already_exists(rt, meta["name"])
        if not (preserve_uid and meta.get("uid")):
            meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        if rt.kind != "Pod":
            meta.setdefault("generation", 1)
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        self._bump(obj)
        self._objects[key] = obj
        self._emit(rt.plural, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def update(self, rt: ResourceType, obj: Obj, expected_rv: str | None = None) -> Obj:
        """Store a new version of an existing object (409 Conflict on a stale RV)."""
        meta = obj["metadata"]
        key = (rt.plural, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        current = self._objects.get(key)
        if current is None:
            raise not_found(rt, meta["name"])
        if expected_rv and expected_rv != current["metadata"]["resourceVersion"]:
            raise StatusError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.plural} "{meta["name"]}": the object has '
                "been modified; please apply your changes to the latest version and try again",
                {"name": meta["name"], "group": rt.group, "kind": rt.plural},
            )
        for immutable in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        if rt.kind != "Pod" and obj.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        if _without_rv(obj) == _without_rv(current):
            return copy.deepcopy(current)  # a no-op write keeps its RV, like the real API
        self._bump(obj)
        self._objects[key] = obj
        self._emit(rt.plural, "MODIFIED", obj, copy.deepcopy(current))
        return copy.deepcopy(obj)

    def mark_deleting(self, rt: ResourceType, namespace: str, name: str, grace: int) -> Obj:
        obj = self._objects[(rt.plural, namespace if rt.namespaced else "", name)]
        previous = copy.deepcopy(obj)
        obj["metadata"].setdefault("deletionTimestamp", now_iso())
        obj["metadata"]["deletionGracePeriodSeconds"] = grace
        self._bump(obj)
        self._emit(rt.plural, "MODIFIED", obj, previous)
        return copy.deepcopy(obj)

    def remove(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        key = (rt.plural, namespace if rt.namespaced else "", name)
        obj = self._objects.pop(key, None)
        if obj is None:
            raise not_found(rt, name)
        previous = copy.deepcopy(obj)
        self._bump(obj)
        self._emit(rt.plural, "DELETED", obj, previous)
        return copy.deepcopy(obj)
