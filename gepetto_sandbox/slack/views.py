"""The double's view surfaces: modals (views.open / views.update) and the App Home tab
(views.publish), each judged by the Block Kit checker as Slack would. Mixed into `SlackDouble`."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gepetto_sandbox.slack.blockkit import check_view
from gepetto_sandbox.slack.call_args import SlackFail


class ViewSurfaces:
    """View handlers; the double supplies its team and users."""

    team_id: str
    users: dict[str, dict[str, Any]]
    home_views: dict[str, dict[str, Any]]  # user id -> the published Home tab

    def _view_answer(self, view: Any, view_id: str) -> dict[str, Any]:
        verdict = check_view(view)
        if verdict.error is not None:
            raise SlackFail(verdict.error, verdict.problems)
        return {
            "ok": True,
            "view": {
                **view,
                "id": view_id,
                "team_id": self.team_id,
                "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            },
        }

    async def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise SlackFail("invalid_trigger_id")
        return self._view_answer(args.get("view"), "V" + uuid.uuid4().hex[:10].upper())

    async def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id") or args.get("external_id")
        if not view_id:
            raise SlackFail("not_found")
        return self._view_answer(args.get("view"), str(view_id))

    async def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user_id") or "")
        if user_id not in self.users:
            raise SlackFail("user_not_found")
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackFail("invalid_arguments", ("views.publish takes a home view",))
        answer = self._view_answer(view, "V" + uuid.uuid4().hex[:10].upper())
        self.home_views[user_id] = answer["view"]
        return answer
