"""Who is clicking, and may they? Checked on every command *and* every click.

Roles come from ``settings.roles`` keyed by Slack user id (``U…``/``W…``) or user-group id
(``S…``); group membership is read with ``usergroups.users.list`` and cached for five minutes.
An optional channel allow-list (``settings.slack_allowed_channels``) confines the bot: outside
it only ``help`` answers. The role rules themselves are the command layer's (each verb's
record in ``gepetto_core.commands.verbs``, checked by ``gepetto_core.commands.registry``); this
module adds Slack identity and channels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gepetto_core.commands import Caller, VerbSpec
from gepetto_core.commands.registry import allowed, caller_role
from gepetto_core.config import Role

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def decide(
    caller: Caller,
    spec: VerbSpec,
    roles: Mapping[str, Role],
    allowed_channels: Collection[str],
) -> Decision:
    """Pure: may ``caller`` run ``spec`` from where they are? Deny by default."""
    if spec.role is None:  # open to anyone, anywhere: `help`
        return Decision(True)
    if allowed_channels and caller.channel not in allowed_channels:
        return Decision(False, f"gepetto does not take commands in <#{caller.channel}>")
    if allowed(caller, spec, roles):
        return Decision(True)
    have = caller_role(caller, roles) or "no role"
    return Decision(False, f"`{spec.key}` needs the {spec.role} role; you have {have}")


def is_group_id(key: str) -> bool:
    return key.startswith("S")


class GroupDirectory:
    """Members of the user groups named in the role table, read from Slack and cached."""

    def __init__(
        self,
        client: AsyncWebClient,
        group_ids: Collection[str],
        *,
        ttl: float = GROUP_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._group_ids = sorted(set(group_ids))
        self._ttl = ttl
        self._clock = clock
        self._members: dict[str, frozenset[str]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def groups_of(self, user_id: str) -> tuple[str, ...]:
        if not self._group_ids:
            return ()
        await self._refresh()
        return tuple(g for g in self._group_ids if user_id in self._members.get(g, frozenset()))

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self._ttl:
                return
            members: dict[str, frozenset[str]] = {}
            for group in self._group_ids:
                try:
                    response = await self._client.usergroups_users_list(usergroup=group)
                    members[group] = frozenset(response.get("users") or [])
                except SlackApiError as e:
                    # A group we cannot read grants nothing (deny by default), and says so.
                    log.warning("cannot read user group %s: %s", group, e.response.get("error"))
                    members[group] = self._members.get(group, frozenset())
            self._members, self._fetched_at = members, now


class Authorizer:
    def __init__(
        self,
        roles: Mapping[str, Role],
        allowed_channels: Collection[str],
        directory: GroupDirectory,
    ) -> None:
        self.roles = dict(roles)
        self.allowed_channels = frozenset(allowed_channels)
        self._directory = directory

    async def caller(self, user_id: str, channel_id: str | None) -> Caller:
        groups = await self._directory.groups_of(user_id)
        return Caller(actor=user_id, source="slack", groups=groups, channel=channel_id)

    def check(self, caller: Caller, spec: VerbSpec) -> Decision:
        return decide(caller, spec, self.roles, self.allowed_channels)
