"""Parsing of validator broadcasts and relay messages into MinerEvent."""

from __future__ import annotations

import json

import pytest

from gepetto_core.errors import InvalidInputError
from gepetto_core.models.events import (
    VALIDATOR_REASONS,
    EventReason,
    MinerEvent,
    parse_broadcast,
    parse_relay_message,
)

VALI = "5ValidatorHotkey"


def test_known_broadcast_becomes_an_event_with_the_validator() -> None:
    event = parse_broadcast(
        {
            "reason": "instance_verified",
            "data": {"instance_id": "i", "miner_hotkey": "m"},
            "filter_recipients": ["m"],
        },
        VALI,
    )
    assert event is not None
    assert event.reason is EventReason.INSTANCE_VERIFIED
    assert event.validator == VALI
    assert event.data == {"instance_id": "i", "miner_hotkey": "m", "validator": VALI}


def test_unknown_and_internal_reasons_are_not_forwarded() -> None:
    assert parse_broadcast({"reason": "instance_hot", "data": {}}, VALI) is None
    assert parse_broadcast({"reason": "server_deleted", "data": {}}, VALI) is None


def test_validator_reasons_are_the_fifteen_of_the_spec() -> None:
    assert len(VALIDATOR_REASONS) == 15
    assert EventReason.SERVER_DELETED not in VALIDATOR_REASONS


@pytest.mark.parametrize(
    "envelope", ["text", ["reason"], {"reason": 5}, {"reason": "chute_created", "data": [1]}]
)
def test_malformed_broadcasts_raise(envelope: object) -> None:
    with pytest.raises(InvalidInputError):
        parse_broadcast(envelope, VALI)


def test_relay_message_round_trip() -> None:
    event = MinerEvent(
        reason=EventReason.BOUNTY_CHANGE, validator=VALI, data={"chute_id": "c", "bounty": 130}
    )
    parsed = parse_relay_message(json.dumps(event.relay_envelope()).encode())
    assert parsed is not None
    assert parsed.reason is EventReason.BOUNTY_CHANGE
    assert parsed.validator == VALI
    assert parsed.data["bounty"] == 130


def test_relay_accepts_internal_events_without_validator() -> None:
    parsed = parse_relay_message('{"event_type":"server_deleted","event_data":{"server_id":"s"}}')
    assert parsed is not None
    assert parsed.validator is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1]",
        b'{"event_type":"job_deleted","event_data":"x"}',
        b'{"event_type":"job_deleted","event_data":{"validator":3}}',
    ],
)
def test_malformed_relay_messages_raise(raw: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_relay_message(raw)


def test_unknown_relay_event_type_is_ignored() -> None:
    assert parse_relay_message('{"event_type":"weird","event_data":{}}') is None
