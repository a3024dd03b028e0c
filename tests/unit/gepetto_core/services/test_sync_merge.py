"""The sync's pure merge rules: good state is never replaced by a failed or empty fetch."""

from __future__ import annotations

import pytest

from gepetto_core.errors import ValidatorUnavailableError
from gepetto_core.models.validator import (
    ChuteUtilization,
    StreamResult,
    StreamStatus,
    ValidatorChute,
    ValidatorInstance,
)
from gepetto_core.services.sync import (
    ListName,
    ListState,
    ValidatorSnapshot,
    merge_failure,
    merge_list,
    merge_snapshot,
    merge_stream,
)


def _chute(chute_id: str) -> ValidatorChute:
    return ValidatorChute(chute_id=chute_id, version="v1")


def _good() -> ListState[ValidatorChute]:
    return merge_stream(
        ListState(), StreamResult(StreamStatus.ITEMS, (_chute("a"), _chute("b"))), "chute_id", 100
    )


def test_items_replace_the_list_and_stamp_the_time() -> None:
    state = _good()
    assert set(state.items) == {"a", "b"}
    assert state.fetched_at == 100
    assert state.age(130) == 30


def test_no_items_marker_empties_the_list_authoritatively() -> None:
    state = merge_stream(_good(), StreamResult(StreamStatus.EMPTY), "chute_id", 200)
    assert dict(state.items) == {}
    assert state.fetched_at == 200


def test_an_empty_stream_without_the_marker_keeps_the_old_list_and_its_age() -> None:
    state = merge_stream(_good(), StreamResult(StreamStatus.NO_INFORMATION), "chute_id", 200)
    assert set(state.items) == {"a", "b"}
    assert state.fetched_at == 100
    assert state.attempted_at == 200
    assert state.age(200) == 100


def test_a_failure_keeps_the_data_and_records_the_error() -> None:
    state = merge_failure(_good(), "HTTP 503", 200)
    assert set(state.items) == {"a", "b"}
    assert state.fetched_at == 100
    assert state.last_error == "HTTP 503"
    assert state.error_at == 200


def test_a_later_success_clears_the_error() -> None:
    failed = merge_failure(_good(), "HTTP 503", 200)
    state = merge_stream(failed, StreamResult(StreamStatus.ITEMS, (_chute("c"),)), "chute_id", 300)
    assert state.last_error is None
    assert set(state.items) == {"c"}


def test_a_json_list_is_authoritative_even_when_empty() -> None:
    state = merge_list(ListState(), [ChuteUtilization(chute_id="a")], "chute_id", 10)
    assert set(state.items) == {"a"}
    emptied = merge_list(state, [], "chute_id", 20)
    assert dict(emptied.items) == {}
    assert emptied.fetched_at == 20


def test_never_fetched_list_has_no_age() -> None:
    assert ListState().age(1000) is None
    assert not ListState().known


def test_merge_snapshot_touches_only_fetched_lists() -> None:
    prev = ValidatorSnapshot(validator="v", chutes=_good())
    instance = ValidatorInstance(instance_id="i1", chute_id="a")
    outcomes = {
        ListName.CHUTES: ValidatorUnavailableError("cut short"),
        ListName.INSTANCES: StreamResult(StreamStatus.ITEMS, (instance,)),
    }
    snap = merge_snapshot(prev, outcomes, 500)
    assert set(snap.chutes.items) == {"a", "b"}
    assert snap.errors() == {ListName.CHUTES: "cut short"}
    assert set(snap.instances.items) == {"i1"}
    assert snap.ages(600)[ListName.INSTANCES] == 100
    assert snap.ages(600)[ListName.IMAGES] is None
    assert prev.instances.items == {}  # the old snapshot is untouched


def test_snapshots_and_their_lists_are_immutable() -> None:
    snap = ValidatorSnapshot(validator="v", chutes=_good())
    with pytest.raises(AttributeError):
        snap.chutes = ListState()  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.chutes.items["z"] = _chute("z")  # type: ignore[index]
