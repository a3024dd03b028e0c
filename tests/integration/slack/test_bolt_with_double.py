"""A real slack_bolt AsyncApp over signed HTTP and over Socket Mode, talking to the double."""

from __future__ import annotations

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.render import PAGE_NEXT_ACTION_ID, page_value
from gepetto_sandbox.slack import (
    RecordedCall,
    SignedRequest,
    SlackDouble,
    block_actions_payload,
    check_message,
    forged,
    signed_block_actions,
    signed_slash_command,
    slash_command_payload,
    stale,
)

from .conftest import APP_TOKEN, SIGNING_SECRET


async def _post(url: str, request: SignedRequest) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=request.body.encode(), headers=request.headers) as response,
    ):
        return response.status, await response.text()


def _has_table(call: RecordedCall) -> bool:
    return any(b["type"] == "table" for b in call.args.get("blocks") or [])


async def test_signed_slash_command_posts_a_table_the_double_accepts(
    slack: SlackDouble, events_url: str
) -> None:
    request = signed_slash_command(
        SIGNING_SECRET, "scales -g h200", response_url=slack.new_response_url()
    )
    status, body = await _post(events_url, request)
    assert status == 200
    assert body == "on it: `scales -g h200`"

    call = await slack.wait_for_call("chat.postMessage", _has_table)
    assert call.ok, call.response
    assert call.auth_header == "Bearer xoxb-test-token"
    assert call.response["channel"] == "C0GEPETTO"
    assert (call.response["channel"], call.response["ts"]) in slack.messages
    buttons = [e for b in call.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["value"] == "pa-0"
    assert buttons[-1]["action_id"] == PAGE_NEXT_ACTION_ID
    assert len(slack.calls_to("auth.test")) == 1


async def test_forged_and_stale_signatures_are_refused(slack: SlackDouble, events_url: str) -> None:
    good = signed_slash_command(SIGNING_SECRET, "nodes")
    assert await _post(events_url, forged(good)) == (401, '{"error": "invalid request"}')
    status, _ = await _post(events_url, stale(SIGNING_SECRET, good, age_seconds=600))
    assert status == 401
    assert slack.calls_to("chat.postMessage") == []


async def test_deploy_click_answers_through_response_url(
    slack: SlackDouble, events_url: str
) -> None:
    response_url = slack.new_response_url()
    payload = block_actions_payload(
        "deploy", "pa-7", user_id="U0APPROVER", response_url=response_url
    )
    status, _ = await _post(events_url, signed_block_actions(SIGNING_SECRET, payload))
    assert status == 200
    call = await slack.wait_for_call("response_url")
    assert call.ok
    assert call.args["text"] == "deploy pa-7 requested by <@U0APPROVER>"
    assert call.args["response_id"] == response_url.rsplit("/", 1)[1]


async def test_next_page_replaces_the_message_in_place(slack: SlackDouble, events_url: str) -> None:
    payload = block_actions_payload(
        PAGE_NEXT_ACTION_ID, page_value("scales -g h200", 2), response_url=slack.new_response_url()
    )
    status, _ = await _post(events_url, signed_block_actions(SIGNING_SECRET, payload))
    assert status == 200
    call = await slack.wait_for_call("response_url")
    assert call.ok, call.response
    assert call.args["replace_original"] is True
    table = next(b for b in call.args["blocks"] if b["type"] == "table")
    assert table["rows"][1][0]["text"] == "21"  # page 3 of 10-row pages starts at row 21
    assert check_message(call.args["text"], call.args["blocks"]).error is None


async def test_socket_mode_slash_command_acks_and_posts(
    slack: SlackDouble, bolt_app: AsyncApp
) -> None:
    handler = AsyncSocketModeHandler(bolt_app, app_token=APP_TOKEN)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await slack.wait_for_socket()
        opened = await slack.wait_for_call("apps.connections.open")
        assert opened.ok and opened.auth_header == f"Bearer {APP_TOKEN}"
        assert opened.response["url"].startswith("ws://127.0.0.1:")

        payload = slash_command_payload("scales", response_url=slack.new_response_url())
        ack = await slack.send_envelope("slash_commands", payload)
        assert ack.payload == {"text": "on it: `scales`"}
        assert ack.latency_seconds >= 0
        print(f"socket mode ack latency: {ack.latency_seconds * 1000:.1f} ms")

        posted = await slack.wait_for_call("chat.postMessage", _has_table)
        assert posted.ok, posted.response

        click = block_actions_payload("deploy", "pa-3", response_url=slack.new_response_url())
        click_ack = await slack.send_envelope("interactive", click)
        assert click_ack.envelope_id != ack.envelope_id
        answered = await slack.wait_for_call("response_url")
        assert answered.args["text"].startswith("deploy pa-3")
        assert [a.envelope_id for a in slack.socket_acks] == [
            ack.envelope_id,
            click_ack.envelope_id,
        ]
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def test_signed_request_matches_the_sdk_verifier() -> None:
    from slack_sdk.signature import SignatureVerifier

    request = signed_block_actions(SIGNING_SECRET, block_actions_payload("deploy", "x"))
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(request.body, request.headers)
    assert not verifier.is_valid_request(request.body, forged(request).headers)
    assert not verifier.is_valid_request(
        request.body, stale(SIGNING_SECRET, request, age_seconds=600).headers
    )
