"""Slack without Slack: a Web API + Socket Mode double, its Block Kit judge, signing helpers.

double.py    SlackDouble: aiohttp Web API (/api/<method>), response_url, Socket Mode WS,
             file uploads (files.getUploadURLExternal -> upload_url -> completeUploadExternal)
blockkit.py  check_message / check_view: would Slack accept it? (independent of bot.render)
signing.py   signed / forged / stale requests and slash-command / block_actions payloads
"""

from gepetto_sandbox.slack.blockkit import (
    Verdict,
    check_message,
    check_view,
    slack_len,
    total_block_text,
)
from gepetto_sandbox.slack.double import SlackDouble
from gepetto_sandbox.slack.recorded import RecordedCall, SocketAck
from gepetto_sandbox.slack.signing import (
    SignedRequest,
    block_actions_payload,
    event_callback_payload,
    forged,
    sign_body,
    signed_block_actions,
    signed_event,
    signed_slash_command,
    slack_signature,
    slash_command_payload,
    stale,
)
from gepetto_sandbox.slack.uploads import UploadedFile

__all__ = [
    "RecordedCall",
    "SignedRequest",
    "SlackDouble",
    "SocketAck",
    "UploadedFile",
    "Verdict",
    "block_actions_payload",
    "check_message",
    "check_view",
    "event_callback_payload",
    "forged",
    "sign_body",
    "signed_block_actions",
    "signed_event",
    "signed_slash_command",
    "slack_len",
    "slack_signature",
    "slash_command_payload",
    "stale",
    "total_block_text",
]
