"""Signatures over real HTTP: the sandbox applies the validator's rules, and what the client
sends verifies with bittensor-wallet on the documented text."""

from __future__ import annotations

import hashlib
import time

import aiohttp
import pytest
from bittensor_wallet import Keypair

from gepetto_core.adapters.signing import HotkeySigner, signed_headers
from gepetto_core.adapters.validator import HttpValidatorApi, compact_json
from gepetto_sandbox.validator import SandboxValidator

from .conftest import make_room, pick_chute, server_for


async def _status_and_detail(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, str]:
    async with http.request(method, url, headers=headers, data=body) as resp:
        payload = await resp.json(content_type=None)
        detail = payload.get("detail", "") if isinstance(payload, dict) else ""
        return resp.status, detail


async def test_good_signature_is_accepted(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    headers = signed_headers(miner, purpose="miner")
    async with http.get(f"{sandbox.base_url}/miner/chutes/", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b"data: {")


async def test_wrong_key_is_rejected(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    headers = signed_headers(HotkeySigner("//Mallory"), purpose="miner")
    headers["X-Chutes-Hotkey"] = miner.hotkey
    status, detail = await _status_and_detail(
        http, "GET", f"{sandbox.base_url}/miner/chutes/", headers
    )
    assert status == 401
    assert detail.startswith(f"Invalid request signature for hotkey {miner.hotkey}.")


async def test_stale_nonce_is_rejected(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    headers = signed_headers(miner, purpose="miner", clock=lambda: time.time() - 601)
    status, detail = await _status_and_detail(
        http, "GET", f"{sandbox.base_url}/miner/instances/", headers
    )
    assert (status, detail) == (401, "Invalid nonce!")


async def test_wrong_purpose_is_rejected(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    headers = signed_headers(miner, purpose="miner")  # the route wants "launch"
    chute = pick_chute(sandbox)
    status, detail = await _status_and_detail(
        http,
        "GET",
        f"{sandbox.base_url}/instances/launch_config?chute_id={chute['chute_id']}",
        headers,
    )
    assert status == 401
    assert detail.startswith("Invalid request signature")


async def test_tampered_body_is_rejected(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox, legacy=True)
    signed_body = compact_json({"node_ids": ["GPU-1"], "host": "10.0.0.1", "port": 30000})
    headers = signed_headers(miner, body=signed_body)
    headers["Content-Type"] = "application/json"
    sent = signed_body.replace(b"30000", b"30001")
    status, detail = await _status_and_detail(
        http, "POST", f"{sandbox.base_url}/instances/{chute['chute_id']}/", headers, sent
    )
    assert status == 401
    assert detail.startswith("Invalid request signature")


async def test_missing_headers_get_the_validator_text(
    http: aiohttp.ClientSession, sandbox: SandboxValidator
) -> None:
    status, detail = await _status_and_detail(http, "GET", f"{sandbox.base_url}/miner/jobs/", {})
    assert (status, detail) == (401, "Can't find a user with that api key in our db :(")
    status, detail = await _status_and_detail(
        http, "GET", f"{sandbox.base_url}/instances/launch_config?chute_id=x", {}
    )
    assert (status, detail) == (404, "Miner with hotkey None not found in metagraph")


async def test_blacklisted_miner_is_refused_on_instance_routes(
    http: aiohttp.ClientSession, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    sandbox.blacklist(miner.hotkey, "gpu hopping")
    status, detail = await _status_and_detail(
        http,
        "GET",
        f"{sandbox.base_url}/instances/launch_config?chute_id=x",
        signed_headers(miner, purpose="launch"),
    )
    assert (status, detail) == (403, "Your hotkey has been blacklisted: gpu hopping")


@pytest.mark.parametrize(
    ("call", "purpose"),
    [("stream_chutes", "miner"), ("stream_instances", "miner"), ("active_instances", "miner")],
)
async def test_client_purpose_signatures_verify_with_bittensor(
    api: HttpValidatorApi,
    sandbox: SandboxValidator,
    miner: HotkeySigner,
    call: str,
    purpose: str,
) -> None:
    await getattr(api, call)()
    sent = sandbox.requests[-1]
    nonce = sent.headers["X-Chutes-Nonce"]
    message = f"{miner.hotkey}:{nonce}:{purpose}"
    signature = bytes.fromhex(sent.headers["X-Chutes-Signature"])
    assert Keypair(ss58_address=miner.hotkey).verify(message, signature)


async def test_client_launch_and_delete_use_their_purposes(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox)
    make_room(sandbox, chute["chute_id"])
    await api.launch_config(chute["chute_id"])
    await api.delete_instance(chute["chute_id"], "no-such-instance")
    launch, delete = sandbox.requests[-2:]
    verifier = Keypair(ss58_address=miner.hotkey)
    for sent, purpose in ((launch, "launch"), (delete, "instances")):
        message = f"{miner.hotkey}:{sent.headers['X-Chutes-Nonce']}:{purpose}"
        assert verifier.verify(message, bytes.fromhex(sent.headers["X-Chutes-Signature"]))


async def test_client_body_signature_covers_the_exact_bytes_sent(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox, legacy=True)
    gpus = server_for(sandbox, miner, chute, host="10.2.0.1")
    make_room(sandbox, chute["chute_id"])
    await api.announce_instance(chute["chute_id"], gpus, "10.2.0.1", 30500)
    sent = sandbox.requests[-1]
    assert sent.method == "POST"
    digest = hashlib.sha256(sent.body).hexdigest()
    message = f"{miner.hotkey}:{sent.headers['X-Chutes-Nonce']}:{digest}"
    assert Keypair(ss58_address=miner.hotkey).verify(
        message, bytes.fromhex(sent.headers["X-Chutes-Signature"])
    )
