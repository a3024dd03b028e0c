"""The validator's hotkey-signature check (`docs/protocol.md#signing`), with its exact 401 texts."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gepetto_core.adapters.signing import (
    HOTKEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    header_value,
    signing_message,
    verify_signature,
)

NONCE_WINDOW = 600  # seconds, both directions
NO_USER = "Can't find a user with that api key in our db :("


class AuthFailure(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


def nonce_is_valid(nonce: str, now: float) -> bool:
    return nonce.isdigit() and abs(now - int(nonce)) < NONCE_WINDOW


def authenticate(
    headers: Mapping[str, str],
    *,
    purpose: str | None,
    body: bytes | None,
    now: float,
    registered: Callable[[str], bool],
    user_optional: bool = False,
) -> str | None:
    """The caller's hotkey, or ``AuthFailure``. ``purpose`` is the route's; without one the
    body hash is signed (GET/DELETE then cannot authenticate). ``user_optional`` routes let an
    unsigned request through with no user (the route then decides)."""
    hotkey = header_value(headers, HOTKEY_HEADER)
    signature = header_value(headers, SIGNATURE_HEADER)
    if not hotkey or not signature:
        if user_optional:
            return None
        raise AuthFailure(401, NO_USER)
    nonce = header_value(headers, NONCE_HEADER) or ""
    if not nonce_is_valid(nonce, now):
        raise AuthFailure(401, "Invalid nonce!")
    if purpose is None and body is None:
        raise AuthFailure(401, "Either payload_str or purpose must be provided")
    try:
        bytes.fromhex(signature)
    except ValueError as e:
        raise AuthFailure(401, f"Invalid signature: {e}") from e
    message = signing_message(hotkey, nonce, purpose, body)
    if not verify_signature(hotkey, message, signature):
        raise AuthFailure(401, f"Invalid request signature for hotkey {hotkey}. Message: {message}")
    if not registered(hotkey):
        raise AuthFailure(401, "Hotkey is not registered on netuid 64")
    return hotkey


def check_blacklist(
    hotkey: str | None, *, in_metagraph: Callable[[str], bool], blacklisted: Mapping[str, str]
) -> None:
    """The instance routes' extra check: 404 when unknown, 403 when blacklisted."""
    if hotkey is None or not in_metagraph(hotkey):
        raise AuthFailure(404, f"Miner with hotkey {hotkey} not found in metagraph")
    reason = blacklisted.get(hotkey)
    if reason:
        raise AuthFailure(403, f"Your hotkey has been blacklisted: {reason}")
