"""The smallest Block Kit pieces, shared by the builders and by ``fit_message``."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]


def plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts if t]}


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's three control characters in text that must show as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
