"""What every listener works with: the runtime, Slack I/O, authorization, pending actions.

One ``BotContext`` per process, built by ``bot.app.build_app``. Tuning knobs that tests and the
demo change are in ``BotConfig``; Slack credentials and channels come from ``BotSettings``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alert_service import AlertService
from bot.alerts import AlertPolicy
from bot.approvals import PendingActions
from bot.authz import Authorizer
from bot.background import Background
from bot.outbox import SlackOutbox
from bot.settings import BotSettings
from gepetto_core.commands import Caller, ParsedCommand
from gepetto_core.commands.context import ProgressSink
from gepetto_core.views import Result
from gepetto_core.wiring import Runtime


class Executor(Protocol):
    """``gepetto_core.commands.execute``'s signature (tests and benchmarks may wrap it)."""

    def __call__(
        self,
        command: str | Sequence[str] | ParsedCommand,
        caller: Caller,
        runtime: Runtime,
        *,
        confirmed: bool = ...,
        approved_by: str | None = ...,
        progress: ProgressSink | None = ...,
        poll_seconds: float = ...,
        message_link: str | None = ...,
    ) -> Awaitable[Result]: ...


@dataclass(frozen=True)
class BotConfig:
    post_interval: float = 1.0  # seconds between new messages per channel
    edit_interval: float = 2.0  # seconds between edits of one message
    deploy_poll_seconds: float = 1.0  # how often a deploy looks at the pod / instance
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    digest_interval: timedelta = timedelta(minutes=10)
    # Wait for the work after the ack before answering (FaaS style); off: ack at once.
    process_before_response: bool = False


@dataclass
class BotContext:
    settings: BotSettings
    runtime: Runtime
    client: AsyncWebClient
    outbox: SlackOutbox
    background: Background
    authz: Authorizer
    pending: PendingActions
    alerts: AlertService
    execute: Executor
    config: BotConfig
    clock: Callable[[], datetime]
    _workspace_url: str | None = None

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, built from the workspace URL (no extra scope needed)."""
        if self._workspace_url is None:
            try:
                self._workspace_url = str((await self.client.auth_test()).get("url") or "")
            except SlackApiError:
                return None
        if not self._workspace_url:
            return None
        return f"{self._workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
