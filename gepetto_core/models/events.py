"""Miner events: what the validator broadcasts (socket.io ``miner_broadcast``) and what the
chutes-miner API relays on Redis ``miner_events`` (`docs/protocol.md#event-feed`).

Both intakes turn what they receive into one ``MinerEvent(reason, validator, data)``. The parse
functions here are pure; they raise ``InvalidInputError`` for malformed input and return ``None``
for well-formed events whose reason we do not handle.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gepetto_core.errors import InvalidInputError


class EventReason(enum.StrEnum):
    CHUTE_CREATED = "chute_created"
    CHUTE_UPDATED = "chute_updated"
    CHUTE_DELETED = "chute_deleted"
    IMAGE_CREATED = "image_created"
    IMAGE_UPDATED = "image_updated"
    IMAGE_DELETED = "image_deleted"
    BOUNTY_CHANGE = "bounty_change"
    JOB_CREATED = "job_created"
    JOB_DELETED = "job_deleted"
    GPU_VERIFIED = "gpu_verified"
    INSTANCE_CREATED = "instance_created"
    INSTANCE_VERIFIED = "instance_verified"
    INSTANCE_ACTIVATED = "instance_activated"
    INSTANCE_DELETED = "instance_deleted"
    ROLLING_UPDATE = "rolling_update"
    # published by the miner's own API, never by a validator
    SERVER_DELETED = "server_deleted"
    GPU_DELETED = "gpu_deleted"


# What a validator may send and the relay forwards; anything else is ignored.
VALIDATOR_REASONS: frozenset[EventReason] = frozenset(EventReason) - {
    EventReason.SERVER_DELETED,
    EventReason.GPU_DELETED,
}

RELAY_CHANNEL = "miner_events"


class MinerEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: EventReason
    validator: str | None = None  # None only for the miner's internal events
    data: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None

    def relay_envelope(self) -> dict[str, Any]:
        """The Redis ``miner_events`` form: ``{event_type, event_data}``, validator in the data."""
        data = dict(self.data)
        if self.validator is not None:
            data["validator"] = self.validator
        return {"event_type": self.reason.value, "event_data": data}


def _known_reason(value: object) -> EventReason | None:
    if not isinstance(value, str):
        raise InvalidInputError(f"event reason must be a string, got {type(value).__name__}")
    try:
        return EventReason(value)
    except ValueError:
        return None


def parse_broadcast(envelope: object, validator: str) -> MinerEvent | None:
    """A socket.io ``miner_broadcast`` envelope ``{reason, data, [message], [filter_recipients]}``
    from ``validator``; None when the reason is not one a validator may send."""
    if not isinstance(envelope, dict):
        raise InvalidInputError(f"broadcast must be an object, got {type(envelope).__name__}")
    reason = _known_reason(envelope.get("reason"))
    if reason is None or reason not in VALIDATOR_REASONS:
        return None
    data = envelope.get("data", {})
    if not isinstance(data, dict):
        raise InvalidInputError(f"{reason.value}: data must be an object")
    message = envelope.get("message")
    return MinerEvent(
        reason=reason,
        validator=validator,
        data={**data, "validator": validator},
        message=message if isinstance(message, str) else None,
    )


def parse_relay_message(raw: bytes | str) -> MinerEvent | None:
    """A Redis ``miner_events`` message ``{"event_type": ..., "event_data": {...}}``; the
    validator is taken from ``event_data.validator`` (absent for internal events)."""
    try:
        envelope = json.loads(raw)
    except ValueError as e:
        raise InvalidInputError("event is not JSON") from e
    if not isinstance(envelope, dict):
        raise InvalidInputError("event envelope must be an object")
    reason = _known_reason(envelope.get("event_type"))
    if reason is None:
        return None
    data = envelope.get("event_data", {})
    if not isinstance(data, dict):
        raise InvalidInputError(f"{reason.value}: event_data must be an object")
    validator = data.get("validator")
    if validator is not None and not isinstance(validator, str):
        raise InvalidInputError(f"{reason.value}: validator must be a string")
    return MinerEvent(reason=reason, validator=validator, data=data)
