"""The same bot over Socket Mode: the slash command envelope is acked over the socket at once,
and the answer follows through response_url."""

from __future__ import annotations

from gepetto_sandbox.slack import slash_command_payload

from .conftest import World, text_of


async def test_socket_mode_command_is_acked_then_answered(world: World) -> None:
    from bot.app import build_app
    from bot.serve import socket_mode

    settings = world.settings.model_copy(update={"slack_mode": "socket"})
    bot = build_app(settings, world.rt, client=world.bot.ctx.client, config=world.bot.ctx.config)
    try:
        async with socket_mode(bot, settings):
            await world.slack.wait_for_socket()
            url = world.slack.new_response_url()
            ack = await world.slack.send_envelope(
                "slash_commands", slash_command_payload("nodes", response_url=url)
            )
            assert ack.payload is not None and "nodes" in ack.payload["text"]
            answer = await world.answer(url.rsplit("/", 1)[1])
            assert answer.ok and "h100" in text_of(answer)
            await bot.ctx.background.drain(timeout=60)
    finally:
        await bot.close()
