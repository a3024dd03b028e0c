"""Slack rendering of view models: pure ``build_*_blocks`` builders and ``fit_message``.

``render_slack(result, ...)`` is what listeners call: it builds the blocks for a view model and
fits them to Slack's limits, returning a ``SlackMessage`` to post (``**msg.as_kwargs()``).

    kit.py     the smallest Block Kit pieces (text objects, section, context)
    blocks.py  builders per view model, pagination values, action ids of our own buttons
    fit.py     fit_message: every Slack limit enforced in one place
"""

from bot.render.blocks import (
    ACTION_ROWS_PER_PAGE,
    DEFAULT_PAGE_SIZE,
    PAGE_NEXT_ACTION_ID,
    PAGE_PREV_ACTION_ID,
    SHARE_ACTION_ID,
    SlackMessage,
    build_button,
    build_message_blocks,
    build_pagination_block,
    build_plan_blocks,
    build_progress_blocks,
    build_result_blocks,
    build_share_block,
    build_table_blocks,
    fallback_text,
    page_value,
    parse_page_value,
    render_slack,
)
from bot.render.fit import block_text_size, fit_message, slack_len, truncate
from bot.render.kit import Block, escape_mrkdwn

__all__ = [
    "ACTION_ROWS_PER_PAGE",
    "DEFAULT_PAGE_SIZE",
    "PAGE_NEXT_ACTION_ID",
    "PAGE_PREV_ACTION_ID",
    "SHARE_ACTION_ID",
    "Block",
    "SlackMessage",
    "block_text_size",
    "build_button",
    "build_message_blocks",
    "build_pagination_block",
    "build_plan_blocks",
    "build_progress_blocks",
    "build_result_blocks",
    "build_share_block",
    "build_table_blocks",
    "escape_mrkdwn",
    "fallback_text",
    "fit_message",
    "page_value",
    "parse_page_value",
    "render_slack",
    "slack_len",
    "truncate",
]
