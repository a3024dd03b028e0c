"""Upload a PNG into a Slack thread with the files API (#26).

`files_upload_v2` is the SDK's form of Slack's current two-step external upload:
files.getUploadURLExternal (name, length, alt text) -> POST the bytes to the returned
upload_url -> files.completeUploadExternal with channel_id and thread_ts, which shares the file
in the thread. Needs the `files:write` scope (manifest.yml). The deprecated files.upload is
never used.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

MAX_ALT_TEXT = 1000  # Slack truncates longer alt text


class UploadError(Exception):
    """Slack refused the upload; `error` is Slack's code (e.g. missing_scope)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"file upload failed: {error}")
        self.error = error


async def upload_png(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str | None,
    png: bytes,
    filename: str,
    title: str,
    alt_text: str,
) -> str:
    """Share `png` in `channel` (in the thread of `thread_ts`); returns the file id."""
    try:
        response = await client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=png,
            filename=filename,
            title=title,
            alt_txt=alt_text[:MAX_ALT_TEXT],
        )
    except SlackApiError as e:
        raise UploadError(str(e.response.get("error"))) from e
    except SlackRequestError as e:  # the POST of the bytes to upload_url failed
        raise UploadError("upload_url refused the bytes") from e
    files = response.get("files") or []
    return str(files[0]["id"]) if files else ""
