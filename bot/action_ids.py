"""Every ``action_id`` and ``callback_id`` the bot puts on a button or view, in one place.

Listeners match on these; builders stamp them. Button *values* never carry arguments: they hold
an opaque pending-action id (or, for paging and sharing, a small view reference).
"""

from __future__ import annotations

# Reading aids (bot/render builds these buttons).
PAGE_PREV_ACTION_ID = "gepetto_page_prev"
PAGE_NEXT_ACTION_ID = "gepetto_page_next"
SHARE_ACTION_ID = "gepetto_share_in_channel"

# A row of `scales` (or any plan offer): shows the plan with a Confirm button.
DEPLOY_ACTION_ID = "gepetto_deploy"
# The plan's buttons.
CONFIRM_ACTION_ID = "gepetto_confirm"
CANCEL_ACTION_ID = "gepetto_cancel"
# A two-person approval card.
APPROVE_ACTION_ID = "gepetto_approve"
REJECT_ACTION_ID = "gepetto_reject"
# Failed-deploy alert buttons.
ALERT_RETRY_ACTION_ID = "gepetto_alert_retry"
ALERT_BACKOFF_ACTION_ID = "gepetto_alert_backoff"
ALERT_UNDEPLOY_ACTION_ID = "gepetto_alert_undeploy"
