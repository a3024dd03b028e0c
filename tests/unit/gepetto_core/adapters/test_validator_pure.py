"""Pure parts of the validator client: line classification, status mapping, back-off."""

from __future__ import annotations

import pytest

from gepetto_core.adapters.validator import LineKind, backoff_delay, classify_line, error_for_status
from gepetto_core.errors import (
    NoCapacityError,
    ValidatorAuthError,
    ValidatorError,
    ValidatorNotFoundError,
    ValidatorUnavailableError,
)
from gepetto_core.models.validator import (
    StreamResult,
    StreamStatus,
    ValidatorChute,
    is_launch_config_version,
)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'data: {"a":1}\n', LineKind.ITEM),
        (b"data: NO_ITEMS\n", LineKind.NO_ITEMS),
        (b"\n", LineKind.SKIP),
        (b": keep-alive\n", LineKind.SKIP),
        (b"data: [1,2]\n", LineKind.BAD),
        (b"event: x\n", LineKind.BAD),
    ],
)
def test_classify_line(line: bytes, kind: LineKind) -> None:
    assert classify_line(line)[0] is kind


def test_item_payload_is_the_json_after_the_prefix() -> None:
    assert classify_line(b'data: {"a":1}\r\n') == (LineKind.ITEM, b'{"a":1}')


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (423, NoCapacityError),
        (404, ValidatorNotFoundError),
        (401, ValidatorAuthError),
        (403, ValidatorAuthError),
        (500, ValidatorUnavailableError),
        (503, ValidatorUnavailableError),
        (400, ValidatorError),
        (409, ValidatorError),
    ],
)
def test_error_for_status(status: int, error: type[ValidatorError]) -> None:
    made = error_for_status(status, "why", "GET /x")
    assert type(made) is error
    assert made.status == status
    assert "why" in str(made)


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_delay(n, 0.5, 3.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]


def test_stream_result_tells_the_three_cases_apart() -> None:
    chute = ValidatorChute(chute_id="c", version="v")
    assert StreamResult.of((chute,), saw_no_items=False).status is StreamStatus.ITEMS
    assert StreamResult.of((), saw_no_items=True).status is StreamStatus.EMPTY
    nothing = StreamResult[ValidatorChute].of((), saw_no_items=False)
    assert nothing.status is StreamStatus.NO_INFORMATION
    assert not nothing.authoritative


def test_wire_models_keep_unknown_fields() -> None:
    chute = ValidatorChute.model_validate(
        {"chute_id": "c", "version": "v", "brand_new_field": 3, "node_selector": {"gpu_count": 4}}
    )
    assert chute.gpu_count == 4
    assert chute.model_extra == {"brand_new_field": 3}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.3.0", True),
        ("0.3.35", True),
        ("0.2.53", False),
        (None, False),
        ("1.0", True),
        ("0.3.0rc1", True),
    ],
)
def test_launch_config_version_threshold(version: str | None, expected: bool) -> None:
    assert is_launch_config_version(version) is expected
