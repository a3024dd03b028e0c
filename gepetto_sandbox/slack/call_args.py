"""Reading a Slack Web API call's arguments, and the error a call answers with (the double's
HTTP plumbing)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web


class SlackFail(Exception):
    """A Web API call that answers `{"ok": false, "error": ...}`."""

    def __init__(self, error: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(error)
        self.error = error
        self.problems = problems


async def read_call_args(request: web.Request) -> dict[str, Any]:
    """A Web API call's arguments as Slack reads them: query string plus a JSON or form body;
    `blocks`, `attachments` and `view` sent as JSON strings (form posts) are decoded."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            args.update(body)
    elif request.can_read_body:
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in ("blocks", "attachments", "view"):
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args
