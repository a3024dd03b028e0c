"""Slack request signing (v0 HMAC-SHA256) and payload builders for tests.

HTTP-mode tests post ``signed_slash_command(...)`` / ``signed_block_actions(...)`` to a Bolt app
(and ``forged``/``stale`` variants that Bolt must refuse with 401); Socket Mode tests push the
same payloads (``slash_command_payload``, ``block_actions_payload``) through the double.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class SignedRequest:
    """A request body plus the headers Slack would send with it."""

    body: str
    headers: dict[str, str]


def slack_signature(signing_secret: str, timestamp: int, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def sign_body(signing_secret: str, body: str, *, timestamp: int | None = None) -> SignedRequest:
    ts = int(time.time()) if timestamp is None else timestamp
    return SignedRequest(
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": slack_signature(signing_secret, ts, body),
        },
    )


def forged(request: SignedRequest) -> SignedRequest:
    """The same request with a signature that does not match (one hex digit changed)."""
    sig = request.headers["X-Slack-Signature"]
    bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    return SignedRequest(request.body, {**request.headers, "X-Slack-Signature": bad})


def stale(signing_secret: str, request: SignedRequest, *, age_seconds: int = 600) -> SignedRequest:
    """The same body correctly signed, but with a timestamp ``age_seconds`` in the past."""
    return sign_body(signing_secret, request.body, timestamp=int(time.time()) - age_seconds)


def slash_command_payload(
    text: str,
    *,
    command: str = "/gepetto",
    user_id: str = "U0OPERATOR",
    channel_id: str = "C0GEPETTO",
    response_url: str = "",
    team_id: str = "T0GEPETTO",
    api_app_id: str = "A0GEPETTO",
) -> dict[str, str]:
    """The fields of a slash command (form body over HTTP, ``payload`` over Socket Mode)."""
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "team_domain": "gepetto-test",
        "channel_id": channel_id,
        "channel_name": "gepetto-ops",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:12]}",
    }


def block_actions_payload(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0OPERATOR",
    channel_id: str = "C0GEPETTO",
    message_ts: str = "1700000000.000100",
    response_url: str = "",
    block_id: str = "actions",
    team_id: str = "T0GEPETTO",
    api_app_id: str = "A0GEPETTO",
) -> dict[str, Any]:
    """A ``block_actions`` interaction payload for one button click."""
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "verification-token-unused",
        "team": {"id": team_id, "domain": "gepetto-test"},
        "channel": {"id": channel_id, "name": "gepetto-ops"},
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "message": {"type": "message", "ts": message_ts, "text": "", "blocks": []},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:12]}",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": now,
            }
        ],
    }


def signed_slash_command(signing_secret: str, text: str, **fields: str) -> SignedRequest:
    return sign_body(signing_secret, urlencode(slash_command_payload(text, **fields)))


def signed_block_actions(signing_secret: str, payload: dict[str, Any]) -> SignedRequest:
    return sign_body(signing_secret, urlencode({"payload": json.dumps(payload)}))


def event_callback_payload(
    event: dict[str, Any], *, team_id: str = "T0GEPETTO", api_app_id: str = "A0GEPETTO"
) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope (e.g. ``app_home_opened``)."""
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": {"event_ts": f"{time.time():.6f}", **event},
        "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
    }


def signed_event(signing_secret: str, payload: dict[str, Any]) -> SignedRequest:
    """Events API requests are JSON bodies, signed like the others."""
    request = sign_body(signing_secret, json.dumps(payload))
    return SignedRequest(request.body, {**request.headers, "Content-Type": "application/json"})
