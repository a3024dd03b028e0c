"""#26 in Slack, end to end against the sandbox miner: `/gepetto fleet` and `/gepetto report`
answer in the channel with the PNG uploaded into the thread through the files API's three
calls; the daily digest posts once a day; the App Home tab is published (and judged by the
double's Block Kit rules) and its buttons are role-checked on click."""

from __future__ import annotations

import io
import json
from datetime import timedelta

from PIL import Image

from bot.home import HOME_PAUSE_ACTION_ID, HOME_RESUME_ACTION_ID
from bot.pictures import DailyDigest
from gepetto_core.models.history import SlotState
from gepetto_core.render_png import REPORT_SIZE
from gepetto_core.scheduling import PlanPolicy
from gepetto_core.services.autoscaler import RoundReport
from gepetto_core.services.fleet_history import FleetHistoryRecorder
from gepetto_core.services.planning_input import load_snapshot
from gepetto_sandbox.slack import (
    RecordedCall,
    block_actions_payload,
    event_callback_payload,
    signed_block_actions,
    signed_event,
)

from .conftest import ALERTS, OPERATOR, OPS, SIGNING_SECRET, VIEWER, World


def _png_of(world: World, complete: RecordedCall) -> Image.Image:
    [item] = json.loads(complete.args["files"])
    content = world.slack.files[item["id"]].content
    assert content is not None
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def _upload_calls(world: World) -> tuple[RecordedCall, RecordedCall, RecordedCall]:
    [get_url] = world.slack.calls_to("files.getUploadURLExternal")
    [upload] = world.slack.calls_to("upload_url")
    [complete] = world.slack.calls_to("files.completeUploadExternal")
    return get_url, upload, complete


async def test_fleet_posts_counts_and_uploads_the_map_into_the_thread(world: World) -> None:
    status, _, _ = await world.command("fleet")
    assert status == 200
    complete = await world.slack.wait_for_call("files.completeUploadExternal", timeout=60)
    await world.settle()
    get_url, upload, complete = _upload_calls(world)
    assert get_url.ok and upload.ok and complete.ok
    assert get_url.args["filename"].startswith("gepetto-fleet-")
    assert int(get_url.args["length"]) == upload.args["bytes"]
    # The words went to the channel first; the image is shared in that message's thread.
    [post] = [c for c in world.slack.calls_to("chat.postMessage") if c.args["channel"] == OPS]
    assert complete.args["channel_id"] == OPS
    assert complete.args["thread_ts"] == post.response["ts"]
    [shared] = world.slack.files_in_thread(OPS, post.response["ts"])
    assert shared.alt_txt and "GPUs on" in shared.alt_txt
    gpus = sum(node.gpu_count for node in world.miner.fleet)
    assert f"{gpus} GPUs on {len(world.miner.fleet)} servers" in post.args["text"]
    image = _png_of(world, complete)
    assert image.format == "PNG" and image.size[0] >= 480


async def test_report_24h_summarises_recorded_history_with_charts(world: World) -> None:
    recorder = FleetHistoryRecorder(world.rt.history, PlanPolicy())
    start = world.clock()
    for minute in range(0, 120, 2):  # two hours of rounds, compressed
        loaded = await load_snapshot(
            world.rt.inventory, world.rt.state, world.rt.sync.snapshots, world.clock()
        )
        at = start + timedelta(minutes=minute)
        await recorder.after_round(RoundReport(at, "active", snapshot=loaded.snapshot))
    world.clock.advance(hours=2)
    await world.command("report 24h")
    complete = await world.slack.wait_for_call("files.completeUploadExternal", timeout=60)
    await world.settle()
    [post] = [c for c in world.slack.calls_to("chat.postMessage") if c.args["channel"] == OPS]
    assert "GPU occupancy" in post.args["text"] and "Estimated earnings" in post.args["text"]
    assert _png_of(world, complete).size == REPORT_SIZE


async def test_daily_digest_posts_once_a_day_in_the_alert_channel(world: World) -> None:
    digest = DailyDigest(world.bot.ctx, hour=7, channel=ALERTS)
    day = world.clock().replace(hour=6, minute=59, second=0, microsecond=0)
    assert not await digest.post_if_due(day)
    assert await digest.post_if_due(day + timedelta(minutes=1))
    assert not await digest.post_if_due(day + timedelta(hours=3))
    # A new leader (a fresh DailyDigest) does not post that day's digest again.
    again = DailyDigest(world.bot.ctx, hour=7, channel=ALERTS)
    assert not await again.post_if_due(day + timedelta(hours=4))
    await world.settle()
    posts = [c for c in world.slack.calls_to("chat.postMessage") if c.args["channel"] == ALERTS]
    assert len(posts) == 1 and "fleet report" in posts[0].args["text"]
    [shared] = world.slack.files_in_thread(ALERTS, posts[0].response["ts"])
    assert shared.filename.startswith("gepetto-report-24h-")


async def _open_home(world: World, user: str) -> dict[str, object]:
    before = len(world.slack.calls_to("views.publish"))
    payload = event_callback_payload({"type": "app_home_opened", "user": user, "tab": "home"})
    status, _ = await world.post(signed_event(SIGNING_SECRET, payload))
    assert status == 200
    await world.slack.wait_for_call(
        "views.publish", lambda c: len(world.slack.calls_to("views.publish")) > before
    )
    await world.settle()
    call = world.slack.calls_to("views.publish")[-1]
    assert call.ok, call.response  # the double's Block Kit judge accepted the view
    return world.slack.home_views[user]


async def _click_home(world: World, action_id: str, user: str) -> None:
    before = len(world.slack.calls_to("views.publish"))
    payload = block_actions_payload(action_id, action_id, user_id=user, block_id="home_autoscaler")
    payload.pop("channel")
    payload.pop("message")
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
    status, _ = await world.post(signed_block_actions(SIGNING_SECRET, payload))
    assert status == 200
    await world.slack.wait_for_call(
        "views.publish", lambda c: len(world.slack.calls_to("views.publish")) > before, timeout=30
    )
    await world.settle()


async def test_home_tab_shows_the_fleet_and_its_buttons_check_roles(world: World) -> None:
    recorder = FleetHistoryRecorder(world.rt.history, PlanPolicy())
    loaded = await load_snapshot(
        world.rt.inventory, world.rt.state, world.rt.sync.snapshots, world.clock()
    )
    fleet = await recorder.after_round(
        RoundReport(world.clock(), "active", snapshot=loaded.snapshot)
    )
    assert fleet is not None and fleet.count(SlotState.IDLE) > 0
    view = await _open_home(world, OPERATOR)
    text = json.dumps(view)
    assert f"{fleet.gpus} GPUs on" in text and "Pause 1h" in text and "Pending approvals" in text

    # A viewer's click is refused (and audited); the mode does not change.
    await _click_home(world, HOME_PAUSE_ACTION_ID, VIEWER)
    assert (await world.rt.state.get_autoscaler_mode()).mode == "active"
    assert "Not done" in json.dumps(world.slack.home_views[VIEWER])
    denied = await world.rt.state.list_audit(actor=VIEWER)
    assert denied and not denied[0].allowed and denied[0].verb == "autoscaler pause"

    # An operator's click pauses it, and their tab is redrawn with Resume.
    await _click_home(world, HOME_PAUSE_ACTION_ID, OPERATOR)
    mode = await world.rt.state.get_autoscaler_mode()
    assert mode.mode == "paused" and mode.updated_by == OPERATOR
    assert "Resume" in json.dumps(world.slack.home_views[OPERATOR])
    await _click_home(world, HOME_RESUME_ACTION_ID, OPERATOR)
    assert (await world.rt.state.get_autoscaler_mode()).mode == "active"


async def test_without_files_write_the_words_arrive_and_the_caller_is_told(world: World) -> None:
    world.slack.bot_scopes = frozenset({"commands", "chat:write", "usergroups:read"})
    await world.command("fleet")
    await world.slack.wait_for_call("chat.postEphemeral", timeout=60)
    await world.settle()
    [post] = [c for c in world.slack.calls_to("chat.postMessage") if c.args["channel"] == OPS]
    assert "GPUs on" in post.args["text"]
    [refused] = world.slack.calls_to("files.getUploadURLExternal")
    assert refused.response["error"] == "missing_scope"
    [told] = world.slack.calls_to("chat.postEphemeral")
    assert told.args["user"] == OPERATOR and "missing_scope" in told.args["text"]
    assert world.slack.files == {}
