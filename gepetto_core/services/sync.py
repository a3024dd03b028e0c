"""Keeps an up-to-date, immutable picture of what each validator says (chutes, images, our GPUs
and instances, metrics, jobs, utilization, rolling updates, active instances, servers).

Each list is fetched concurrently, per validator, on an interval. The merge rules are pure
functions (``merge_*``): a failed, truncated or "no information" fetch never replaces good state;
it records the error and leaves the data (and its age) as it was, so every view can say how fresh
what it shows is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from gepetto_core.errors import ValidatorError
from gepetto_core.models.validator import (
    ActiveInstance,
    ChuteMetrics,
    ChuteUtilization,
    RollingUpdate,
    StreamResult,
    StreamStatus,
    ValidatorChute,
    ValidatorImage,
    ValidatorInstance,
    ValidatorJob,
    ValidatorNode,
    ValidatorServer,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class ListName(enum.StrEnum):
    CHUTES = "chutes"
    IMAGES = "images"
    NODES = "nodes"
    INSTANCES = "instances"
    METRICS = "metrics"
    JOBS = "jobs"
    UTILIZATION = "utilization"
    ROLLING_UPDATES = "rolling_updates"
    ACTIVE_INSTANCES = "active_instances"
    SERVERS = "servers"


ALL_LISTS: tuple[ListName, ...] = tuple(ListName)

# The field each list is keyed by.
ID_FIELDS: Mapping[ListName, str] = MappingProxyType(
    {
        ListName.CHUTES: "chute_id",
        ListName.IMAGES: "image_id",
        ListName.NODES: "uuid",
        ListName.INSTANCES: "instance_id",
        ListName.METRICS: "chute_id",
        ListName.JOBS: "job_id",
        ListName.UTILIZATION: "chute_id",
        ListName.ROLLING_UPDATES: "chute_id",
        ListName.ACTIVE_INSTANCES: "instance_id",
        ListName.SERVERS: "server_id",
    }
)


class ValidatorFeed(Protocol):
    """What the sync needs from a validator client (``HttpValidatorApi`` provides it)."""

    validator_hotkey: str

    async def stream_chutes(self) -> StreamResult[ValidatorChute]: ...
    async def stream_images(self) -> StreamResult[ValidatorImage]: ...
    async def stream_nodes(self) -> StreamResult[ValidatorNode]: ...
    async def stream_instances(self) -> StreamResult[ValidatorInstance]: ...
    async def stream_metrics(self) -> StreamResult[ChuteMetrics]: ...
    async def stream_jobs(self) -> StreamResult[ValidatorJob]: ...
    async def utilization(self) -> list[ChuteUtilization]: ...
    async def rolling_updates(self) -> list[RollingUpdate]: ...
    async def active_instances(self) -> list[ActiveInstance]: ...
    async def servers(self) -> list[ValidatorServer]: ...


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ListState(Generic[T]):
    """One list as last known: the items, when they were last confirmed, the last error."""

    items: Mapping[str, T] = field(default_factory=lambda: _EMPTY)
    fetched_at: float | None = None  # last fetch that told us the full current set
    attempted_at: float | None = None
    last_error: str | None = None  # set while the latest attempt failed
    error_at: float | None = None

    @property
    def known(self) -> bool:
        return self.fetched_at is not None

    def age(self, now: float) -> float | None:
        """Seconds since the items were confirmed; None if they never were."""
        return None if self.fetched_at is None else max(0.0, now - self.fetched_at)


@dataclass(frozen=True, slots=True)
class ValidatorSnapshot:
    """Everything known about one validator at one moment. Immutable: replaced, never edited."""

    validator: str
    chutes: ListState[ValidatorChute] = field(default_factory=ListState)
    images: ListState[ValidatorImage] = field(default_factory=ListState)
    nodes: ListState[ValidatorNode] = field(default_factory=ListState)
    instances: ListState[ValidatorInstance] = field(default_factory=ListState)
    metrics: ListState[ChuteMetrics] = field(default_factory=ListState)
    jobs: ListState[ValidatorJob] = field(default_factory=ListState)
    utilization: ListState[ChuteUtilization] = field(default_factory=ListState)
    rolling_updates: ListState[RollingUpdate] = field(default_factory=ListState)
    active_instances: ListState[ActiveInstance] = field(default_factory=ListState)
    servers: ListState[ValidatorServer] = field(default_factory=ListState)

    def list_state(self, name: ListName) -> ListState[Any]:
        state: ListState[Any] = getattr(self, name.value)
        return state

    def ages(self, now: float) -> dict[ListName, float | None]:
        return {name: self.list_state(name).age(now) for name in ALL_LISTS}

    def errors(self) -> dict[ListName, str]:
        return {
            name: error
            for name in ALL_LISTS
            if (error := self.list_state(name).last_error) is not None
        }


# ---- pure merge rules ---------------------------------------------------------------------

Outcome = StreamResult[Any] | Sequence[Any] | ValidatorError


def key_items(items: Iterable[T], id_field: str) -> Mapping[str, T]:
    """Index items by their id field (a later duplicate wins, as in the official miner)."""
    return MappingProxyType({str(getattr(item, id_field)): item for item in items})


def merge_stream(
    prev: ListState[T], result: StreamResult[Any], id_field: str, now: float
) -> ListState[T]:
    """Items or NO_ITEMS replace the list; an empty stream without NO_ITEMS keeps it."""
    if result.status is StreamStatus.NO_INFORMATION:
        return replace(prev, attempted_at=now, last_error=None, error_at=None)
    items: Mapping[str, T] = (
        key_items(result.items, id_field) if result.status is StreamStatus.ITEMS else _EMPTY
    )
    return ListState(items=items, fetched_at=now, attempted_at=now)


def merge_list(prev: ListState[T], items: Sequence[T], id_field: str, now: float) -> ListState[T]:
    """A complete JSON list answer is authoritative, even when empty."""
    return ListState(items=key_items(items, id_field), fetched_at=now, attempted_at=now)


def merge_failure(prev: ListState[T], error: str, now: float) -> ListState[T]:
    """Keep the data and its age; remember why the refresh failed."""
    return replace(prev, attempted_at=now, last_error=error, error_at=now)


def merge_outcome(prev: ListState[T], outcome: Outcome, id_field: str, now: float) -> ListState[T]:
    if isinstance(outcome, ValidatorError):
        return merge_failure(prev, str(outcome), now)
    if isinstance(outcome, StreamResult):
        return merge_stream(prev, outcome, id_field, now)
    return merge_list(prev, outcome, id_field, now)


def merge_snapshot(
    prev: ValidatorSnapshot, outcomes: Mapping[ListName, Outcome], now: float
) -> ValidatorSnapshot:
    """The next snapshot: each fetched list merged by the rules above, the rest untouched."""
    changes: dict[str, Any] = {
        name.value: merge_outcome(prev.list_state(name), outcome, ID_FIELDS[name], now)
        for name, outcome in outcomes.items()
    }
    return replace(prev, **changes)


# ---- the service ----------------------------------------------------------------------------


def _fetchers(feed: ValidatorFeed) -> dict[ListName, Callable[[], Awaitable[Any]]]:
    return {
        ListName.CHUTES: feed.stream_chutes,
        ListName.IMAGES: feed.stream_images,
        ListName.NODES: feed.stream_nodes,
        ListName.INSTANCES: feed.stream_instances,
        ListName.METRICS: feed.stream_metrics,
        ListName.JOBS: feed.stream_jobs,
        ListName.UTILIZATION: feed.utilization,
        ListName.ROLLING_UPDATES: feed.rolling_updates,
        ListName.ACTIVE_INSTANCES: feed.active_instances,
        ListName.SERVERS: feed.servers,
    }


async def _capture(fetch: Callable[[], Awaitable[Any]]) -> Outcome:
    """Run one fetch; a validator failure becomes a value (recorded, not raised). Anything else
    is a bug and propagates."""
    try:
        result: Outcome = await fetch()
    except ValidatorError as e:
        return e
    return result


class SyncService:
    """Periodically refreshes one snapshot per validator."""

    def __init__(
        self,
        feeds: Sequence[ValidatorFeed],
        *,
        interval: float = 60.0,
        lists: Collection[ListName] = ALL_LISTS,
        clock: Callable[[], float] = time.time,
        on_synced: Callable[[ValidatorSnapshot], Awaitable[None]] | None = None,
    ) -> None:
        self._feeds = {feed.validator_hotkey: feed for feed in feeds}
        self._interval = interval
        self._lists = tuple(lists)
        self._clock = clock
        self._on_synced = on_synced
        self._snapshots: dict[str, ValidatorSnapshot] = {
            hotkey: ValidatorSnapshot(validator=hotkey) for hotkey in self._feeds
        }
        self._locks = {hotkey: asyncio.Lock() for hotkey in self._feeds}

    @property
    def validators(self) -> tuple[str, ...]:
        return tuple(self._feeds)

    @property
    def snapshots(self) -> Mapping[str, ValidatorSnapshot]:
        return MappingProxyType(dict(self._snapshots))

    def snapshot(self, validator: str) -> ValidatorSnapshot:
        return self._snapshots[validator]

    def server_vm_version(self, validator: str, server_id: str) -> str | None:
        """The TEE VM version the validator last reported for a server (`/miner/servers/`);
        None when unknown (not synced yet, not listed, or no version)."""
        snapshot = self._snapshots.get(validator)
        server = snapshot.servers.items.get(server_id) if snapshot is not None else None
        return server.version if server is not None else None

    async def sync_validator(self, validator: str) -> ValidatorSnapshot:
        """Fetch every list of one validator concurrently and merge the results."""
        feed = self._feeds[validator]
        fetchers = _fetchers(feed)
        async with self._locks[validator]:
            async with asyncio.TaskGroup() as group:
                tasks = {name: group.create_task(_capture(fetchers[name])) for name in self._lists}
            outcomes = {name: task.result() for name, task in tasks.items()}
            snapshot = merge_snapshot(self._snapshots[validator], outcomes, self._clock())
            self._snapshots[validator] = snapshot
        for name, error in snapshot.errors().items():
            log.warning("sync %s %s: %s", validator, name, error)
        if self._on_synced is not None:
            await self._on_synced(snapshot)
        return snapshot

    async def sync_all(self) -> Mapping[str, ValidatorSnapshot]:
        async with asyncio.TaskGroup() as group:
            for hotkey in self._feeds:
                group.create_task(self.sync_validator(hotkey))
        return self.snapshots

    async def run(self, stop: asyncio.Event) -> None:
        """Sync every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            await self.sync_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
