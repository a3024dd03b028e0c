"""The Web API double through the real AsyncWebClient: answers, refusals, rate limits."""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.render import fit_message, render_slack
from gepetto_core.views import Progress
from gepetto_sandbox.slack import SlackDouble


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_over_limit_messages_are_refused_like_slack(
    slack: SlackDouble, web_client: AsyncWebClient
) -> None:
    too_many = [_section(f"row {i}") for i in range(51)]
    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_postMessage(channel="C0GEPETTO", text="t", blocks=too_many)
    assert refused.value.response["error"] == "invalid_blocks"
    assert refused.value.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 51 items [json-pointer:/blocks]"
    ]
    with pytest.raises(SlackApiError) as long_text:
        await web_client.chat_postMessage(channel="C0GEPETTO", text="x" * 40_001)
    assert long_text.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as heavy:
        await web_client.chat_postMessage(
            channel="C0GEPETTO", text="t", blocks=[_section("y" * 2_500)] * 5
        )
    assert heavy.value.response["error"] == "msg_blocks_too_long"
    assert slack.messages == {}

    blocks, text = fit_message(too_many, "t")
    posted = await web_client.chat_postMessage(channel="C0GEPETTO", text=text, blocks=blocks)
    assert posted["ok"] and len(posted["message"]["blocks"]) == 50


async def test_bad_tokens(slack: SlackDouble) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
    with pytest.raises(SlackApiError) as invalid:
        await wrong.auth_test()
    assert invalid.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as wrong_kind:
        await AsyncWebClient(
            token="xoxb-test-token", base_url=slack.base_url
        ).apps_connections_open(app_token="xoxb-test-token")
    assert wrong_kind.value.response["error"] == "not_allowed_token_type"
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.base_url + "auth.test") as response,
    ):
        assert (await response.json())["error"] == "not_authed"
    # the token never shows in the double's repr or a recorded call's repr
    assert "xoxb" not in repr(slack) and "xoxb" not in repr(slack.calls)


async def test_rate_limit_per_method_and_channel(
    slack: SlackDouble, web_client: AsyncWebClient
) -> None:
    slack.rate_limit("chat.postMessage", channel="C0GEPETTO", times=1, retry_after=7)
    await web_client.chat_postMessage(channel="C0OTHER", text="elsewhere is fine")
    with pytest.raises(SlackApiError) as limited:
        await web_client.chat_postMessage(channel="C0GEPETTO", text="hello")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] in ("7", ["7"])
    assert limited.value.response["error"] == "ratelimited"
    assert (await web_client.chat_postMessage(channel="C0GEPETTO", text="later"))["ok"]


async def test_sdk_retry_handler_honours_retry_after(slack: SlackDouble) -> None:
    client = AsyncWebClient(
        token="xoxb-test-token",
        base_url=slack.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.rate_limit("chat.postMessage", times=1, retry_after=0)
    response = await client.chat_postMessage(channel="C0GEPETTO", text="retried")
    assert response["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


async def test_throttle_refuses_a_second_post_to_the_same_channel(
    slack: SlackDouble, web_client: AsyncWebClient
) -> None:
    slack.throttle("chat.postMessage", per_seconds=3600)
    await web_client.chat_postMessage(channel="C0GEPETTO", text="first")
    await web_client.chat_postMessage(channel="C0SECOND", text="another channel")
    with pytest.raises(SlackApiError) as limited:
        await web_client.chat_postMessage(channel="C0GEPETTO", text="second")
    assert limited.value.response.status_code == 429


async def test_message_lifecycle(slack: SlackDouble, web_client: AsyncWebClient) -> None:
    posted = await web_client.chat_postMessage(channel="#gepetto-ops", text="deploy: claimed")
    channel, ts = posted["channel"], posted["ts"]
    assert channel == "C0GEPETTO"
    seconds, micros = ts.split(".")
    assert seconds.isdigit() and len(micros) == 6
    thread = await web_client.chat_postMessage(channel=channel, text="progress", thread_ts=ts)
    assert thread["ts"] > ts and thread["message"]["thread_ts"] == ts

    updated = await web_client.chat_update(
        channel=channel, ts=ts, text="deploy: active", blocks=[_section("✅ active")]
    )
    assert updated["ts"] == ts
    assert slack.messages[(channel, ts)]["text"] == "deploy: active"
    with pytest.raises(SlackApiError) as bad_update:
        await web_client.chat_update(
            channel=channel, ts=ts, text="t", blocks=[_section("z" * 3001)]
        )
    assert bad_update.value.response["error"] == "invalid_blocks"

    assert (await web_client.chat_delete(channel=channel, ts=ts))["ok"]
    with pytest.raises(SlackApiError) as gone:
        await web_client.chat_update(channel=channel, ts=ts, text="again")
    assert gone.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as unknown:
        await web_client.chat_postMessage(channel="#nowhere", text="x")
    assert unknown.value.response["error"] == "channel_not_found"


async def test_ephemeral_views_and_directory(
    slack: SlackDouble, web_client: AsyncWebClient
) -> None:
    ephemeral = await web_client.chat_postEphemeral(
        channel="C0GEPETTO", user="U0OPERATOR", text="only you"
    )
    assert ephemeral["message_ts"]
    with pytest.raises(SlackApiError) as stranger:
        await web_client.chat_postEphemeral(channel="C0GEPETTO", user="U0NOBODY", text="x")
    assert stranger.value.response["error"] == "user_not_in_channel"

    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Deploy"},
        "blocks": [_section("loading…")],
    }
    opened = await web_client.views_open(trigger_id="123.abc", view=modal)
    view_id = opened["view"]["id"]
    updated = await web_client.views_update(
        view_id=view_id, view={**modal, "blocks": [_section("ready")]}
    )
    assert updated["view"]["id"] == view_id
    with pytest.raises(SlackApiError) as long_title:
        await web_client.views_open(
            trigger_id="123.abc",
            view={
                **modal,
                "title": {"type": "plain_text", "text": "A title far too long for a modal"},
            },
        )
    assert long_title.value.response["error"] == "invalid_arguments"

    info = await web_client.conversations_info(channel="C0GEPETTO")
    assert info["channel"]["name"] == "gepetto-ops"
    members = await web_client.usergroups_users_list(usergroup="S0ADMINS")
    assert members["users"] == ["U0APPROVER"]
    with pytest.raises(SlackApiError) as no_group:
        await web_client.usergroups_users_list(usergroup="S0NONE")
    assert no_group.value.response["error"] == "no_such_subteam"
    user = await web_client.users_info(user="U0OPERATOR")
    assert user["user"]["real_name"] == "Ops Person"
    with pytest.raises(SlackApiError) as no_user:
        await web_client.users_info(user="U0GHOST")
    assert no_user.value.response["error"] == "user_not_found"


async def test_response_url_takes_five_messages_then_expires(slack: SlackDouble) -> None:
    url = slack.new_response_url()
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(6):
            async with session.post(url, json={"text": f"reply {i}"}) as response:
                statuses.append(response.status)
        async with session.post(
            slack.new_response_url(), json={"text": "t", "blocks": [_section("q" * 3001)]}
        ) as bad:
            assert (bad.status, (await bad.json())["error"]) == (400, "invalid_blocks")
    assert statuses == [200] * 5 + [404]


async def test_wait_for_call_times_out_when_nothing_comes(slack: SlackDouble) -> None:
    with pytest.raises(TimeoutError):
        await slack.wait_for_call("chat.postMessage", timeout=0.05)


async def test_progress_is_posted_once_then_updated_in_place(
    slack: SlackDouble, web_client: AsyncWebClient
) -> None:
    first = render_slack(Progress(title="deploy llama-70b", current=0))
    posted = await web_client.chat_postMessage(channel="C0GEPETTO", **first.as_kwargs())
    for step in range(1, 8):
        update = render_slack(Progress(title="deploy llama-70b", current=step))
        await web_client.chat_update(
            channel=posted["channel"], ts=posted["ts"], **update.as_kwargs()
        )
    final = slack.messages[(posted["channel"], posted["ts"])]
    assert final["text"] == "deploy llama-70b: done (7/7 steps)"
    assert final["blocks"][0]["text"]["text"].count("✅") == 7
    assert len(slack.calls_to("chat.update")) == 7 and len(slack.messages) == 1


async def test_a_token_sent_in_the_body_is_not_recorded(slack: SlackDouble) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.base_url + "auth.test", data={"token": "xoxb-test-token"}) as response,
    ):
        assert (await response.json())["ok"] is True
    call = slack.calls_to("auth.test")[0]
    assert "token" not in call.args and "xoxb" not in repr(call)
