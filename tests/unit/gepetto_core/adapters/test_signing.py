"""Signing (client side) and the sandbox's pure signature check (validator side)."""

from __future__ import annotations

import hashlib

import pytest
from bittensor_wallet import Keypair
from pydantic import SecretStr

from gepetto_core.adapters.signing import (
    HOTKEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    HotkeySigner,
    signed_headers,
    signing_message,
)
from gepetto_core.errors import ConfigError
from gepetto_sandbox.validator.auth import NO_USER, AuthFailure, authenticate

SEED = "0x" + "5a" * 32
NOW = 1_760_000_000.0


def _clock() -> float:
    return NOW


@pytest.fixture(scope="module")
def signer() -> HotkeySigner:
    return HotkeySigner(SecretStr(SEED))


def test_purpose_message_is_hotkey_nonce_purpose() -> None:
    assert signing_message("5Abc", "17", "miner", None) == "5Abc:17:miner"


def test_body_message_hashes_the_exact_bytes() -> None:
    body = b'{"active":true}'
    expected = f"5Abc:17:{hashlib.sha256(body).hexdigest()}"
    assert signing_message("5Abc", "17", None, body) == expected


def test_empty_body_hashes_to_the_sha256_of_nothing() -> None:
    assert signing_message("5Abc", "17", None, b"").endswith(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_headers_verify_with_bittensor_keypair_on_the_documented_text(
    signer: HotkeySigner,
) -> None:
    headers = signed_headers(signer, purpose="miner", clock=_clock)
    assert headers[HOTKEY_HEADER] == signer.hotkey
    assert headers[NONCE_HEADER] == str(int(NOW))
    assert not headers[SIGNATURE_HEADER].startswith("0x")
    message = f"{signer.hotkey}:{int(NOW)}:miner"
    verifier = Keypair(ss58_address=signer.hotkey)
    assert verifier.verify(message, bytes.fromhex(headers[SIGNATURE_HEADER]))
    assert not verifier.verify(
        f"{signer.hotkey}:{int(NOW)}:launch", bytes.fromhex(headers[SIGNATURE_HEADER])
    )


def test_seed_never_shows_in_repr_or_errors(signer: HotkeySigner) -> None:
    assert "5a5a" not in repr(signer)
    assert signer.hotkey in repr(signer)
    bad = "0x" + "zz" * 32
    with pytest.raises(ConfigError) as info:
        HotkeySigner(SecretStr(bad))
    assert "zz" not in str(info.value)
    assert "zz" not in str(info.value.__cause__)


def _check(
    headers: dict[str, str],
    *,
    purpose: str | None = "miner",
    body: bytes | None = None,
    registered: bool = True,
    now: float = NOW,
) -> str | None:
    return authenticate(
        headers, purpose=purpose, body=body, now=now, registered=lambda _h: registered
    )


def test_validator_accepts_a_good_signature(signer: HotkeySigner) -> None:
    assert _check(signed_headers(signer, purpose="miner", clock=_clock)) == signer.hotkey


def test_validator_rejects_a_signature_from_another_key(signer: HotkeySigner) -> None:
    other = HotkeySigner("//Mallory")
    headers = signed_headers(other, purpose="miner", clock=_clock)
    headers[HOTKEY_HEADER] = signer.hotkey  # claims to be us
    with pytest.raises(AuthFailure) as info:
        _check(headers)
    assert info.value.status == 401
    assert info.value.detail.startswith(f"Invalid request signature for hotkey {signer.hotkey}.")


@pytest.mark.parametrize("skew", [600, -600, 3600])
def test_validator_rejects_a_stale_or_future_nonce(signer: HotkeySigner, skew: int) -> None:
    headers = signed_headers(signer, purpose="miner", clock=lambda: NOW - skew)
    with pytest.raises(AuthFailure) as info:
        _check(headers)
    assert (info.value.status, info.value.detail) == (401, "Invalid nonce!")


def test_validator_accepts_a_nonce_just_inside_the_window(signer: HotkeySigner) -> None:
    headers = signed_headers(signer, purpose="miner", clock=lambda: NOW - 599)
    assert _check(headers) == signer.hotkey


def test_validator_rejects_a_tampered_body(signer: HotkeySigner) -> None:
    headers = signed_headers(signer, body=b'{"active":true}', clock=_clock)
    with pytest.raises(AuthFailure) as info:
        _check(headers, purpose=None, body=b'{"active":false}')
    assert info.value.detail.startswith("Invalid request signature")


def test_validator_rejects_a_wrong_purpose(signer: HotkeySigner) -> None:
    headers = signed_headers(signer, purpose="launch", clock=_clock)
    with pytest.raises(AuthFailure) as info:
        _check(headers, purpose="miner")
    assert info.value.detail.startswith("Invalid request signature")


def test_validator_texts_for_missing_headers_bad_hex_and_unregistered(
    signer: HotkeySigner,
) -> None:
    with pytest.raises(AuthFailure) as info:
        _check({})
    assert info.value.detail == NO_USER
    assert (
        authenticate(
            {}, purpose="launch", body=None, now=NOW, registered=lambda _h: True, user_optional=True
        )
        is None
    )
    headers = signed_headers(signer, purpose="miner", clock=_clock)
    with pytest.raises(AuthFailure) as info:
        _check({**headers, SIGNATURE_HEADER: "not-hex"})
    assert info.value.detail.startswith("Invalid signature:")
    with pytest.raises(AuthFailure) as info:
        _check(headers, registered=False)
    assert info.value.detail == "Hotkey is not registered on netuid 64"
    with pytest.raises(AuthFailure) as info:
        _check(headers, purpose=None, body=None)
    assert info.value.detail == "Either payload_str or purpose must be provided"
