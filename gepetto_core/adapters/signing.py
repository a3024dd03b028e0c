"""sr25519 hotkey signing of validator requests (the `X-Chutes-*` header scheme).

The validator rebuilds the signed text from the *route*: ``"{hotkey}:{nonce}:{purpose}"`` when the
route declares a purpose, else ``"{hotkey}:{nonce}:{sha256_hex(raw body)}"``. The signature is the
hex of the 64-byte sr25519 signature, without a ``0x`` prefix.

The seed is held as a ``pydantic.SecretStr`` so it never shows in a repr, a log line or an error.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from bittensor_wallet import Keypair
from pydantic import SecretStr

from gepetto_core.errors import ConfigError

HOTKEY_HEADER = "X-Chutes-Hotkey"
NONCE_HEADER = "X-Chutes-Nonce"
SIGNATURE_HEADER = "X-Chutes-Signature"


@runtime_checkable
class Signer(Protocol):
    """Something that signs with a miner hotkey; only the ss58 address is public."""

    @property
    def hotkey(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte sr25519 signature of ``message``."""
        ...


class HotkeySigner:
    """Signs with the sr25519 keypair derived from a miner seed (``0x`` + 64 hex) or a dev URI
    such as ``//Alice``."""

    __slots__ = ("_hotkey", "_keypair")

    def __init__(self, seed: SecretStr | str) -> None:
        secret = seed.get_secret_value() if isinstance(seed, SecretStr) else seed
        try:
            if secret.startswith("//"):
                keypair = Keypair.create_from_uri(secret)
            else:
                hex_seed = secret if secret.startswith("0x") else "0x" + secret
                keypair = Keypair.create_from_seed(hex_seed)  # type: ignore[arg-type]
        except Exception as e:  # the library raises assorted types; never echo the seed
            raise ConfigError("MINER_SEED", "not a valid sr25519 seed") from _scrub(e)
        self._keypair = keypair
        self._hotkey: str = keypair.ss58_address

    @property
    def hotkey(self) -> str:
        return self._hotkey

    def sign(self, message: bytes) -> bytes:
        return bytes(self._keypair.sign(message))

    def __repr__(self) -> str:
        return f"HotkeySigner(hotkey={self._hotkey!r})"


def _scrub(error: Exception) -> Exception:
    """A stand-in cause that keeps the error type but not its text (which may quote the seed)."""
    return RuntimeError(f"{type(error).__name__} (details withheld)")


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signing_message(hotkey: str, nonce: str, purpose: str | None, body: bytes | None) -> str:
    """The text the validator expects to be signed for this request."""
    tail = purpose if purpose is not None else body_sha256(body or b"")
    return f"{hotkey}:{nonce}:{tail}"


def signed_headers(
    signer: Signer,
    *,
    purpose: str | None = None,
    body: bytes | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """Headers for one request: signed for ``purpose``, or for the sha256 of ``body`` (the exact
    bytes that will be sent) when the route has no purpose."""
    nonce = str(int(clock()))
    message = signing_message(signer.hotkey, nonce, purpose, body)
    return {
        HOTKEY_HEADER: signer.hotkey,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signer.sign(message.encode()).hex(),
    }


def verify_signature(hotkey: str, message: str, signature_hex: str) -> bool:
    """Check an sr25519 signature as the validator does; False for any malformed input."""
    try:
        signature = bytes.fromhex(signature_hex)
        return bool(Keypair(ss58_address=hotkey).verify(message, signature))
    except (ValueError, TypeError):
        return False


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup for plain dicts (socket.io sends headers as a JSON object)."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None
