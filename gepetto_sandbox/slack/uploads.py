"""The double's two-step external file upload, as Slack runs it: files.getUploadURLExternal
gives an upload_url, the client POSTs the bytes there, files.completeUploadExternal shares the
files (into a thread when one is given). Mixed into `SlackDouble`."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gepetto_sandbox.slack.call_args import SlackFail
from gepetto_sandbox.slack.recorded import RecordedCall

MAX_UPLOAD_BYTES = 1_000_000_000  # Slack's file size limit (1 GB)


@dataclass
class UploadedFile:
    """A file going through the two-step external upload (files.getUploadURLExternal, a POST of
    the bytes to its upload_url, files.completeUploadExternal)."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    content: bytes | None = None  # None until the bytes are POSTed to the upload_url
    title: str | None = None
    channel: str | None = None  # set by completeUploadExternal (None: uploaded, not shared)
    thread_ts: str | None = None
    completed: bool = False


class FileUploads:
    """Upload state and handlers; the double supplies the message store and the recorder."""

    files: dict[str, UploadedFile]
    messages: dict[tuple[str, str], dict[str, Any]]
    _root: str

    async def _record(self, call: RecordedCall) -> None:
        raise NotImplementedError

    def _next_ts(self) -> str:
        raise NotImplementedError

    def _channel_id(self, args: dict[str, Any]) -> str:
        raise NotImplementedError

    def _message(self, args: dict[str, Any], ts: str) -> dict[str, Any]:
        raise NotImplementedError

    async def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        raw_length = args.get("length")
        if not isinstance(filename, str) or not filename:
            raise SlackFail("invalid_arguments", ("filename is required",))
        try:
            length = int(str(raw_length))
        except ValueError:
            raise SlackFail("invalid_arguments", ("length must be an integer",)) from None
        if length <= 0 or length > MAX_UPLOAD_BYTES:
            raise SlackFail("invalid_arguments", (f"length {length} out of range",))
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        alt = args.get("alt_txt")
        self.files[file_id] = UploadedFile(
            file_id, filename, length, alt_txt=alt if isinstance(alt, str) else None
        )
        return {"ok": True, "upload_url": f"{self._root}/upload/v1/{file_id}", "file_id": file_id}

    async def _upload_post(self, request: web.Request) -> web.Response:
        """The upload_url: takes the bytes as the raw body or a multipart `file` part."""
        file_id = request.match_info["file_id"]
        upload = self.files.get(file_id)
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file")
            data = part.file.read() if isinstance(part, web.FileField) else b""
        else:
            data = await request.read()
        call = RecordedCall(
            "upload_url", {"file_id": file_id, "bytes": len(data)}, time.monotonic()
        )
        if upload is None or upload.completed:
            call.status = 404
        elif len(data) != upload.length:
            call.status = 400  # stricter than Slack is documented to be: the length must match
        else:
            upload.content = data
        call.response = {"ok": call.status == 200}
        await self._record(call)
        if call.status != 200:
            return web.Response(status=call.status, text="upload failed")
        return web.Response(text=f"OK - {len(data)}")

    async def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            items = json.loads(str(args.get("files") or ""))
        except ValueError:
            raise SlackFail("invalid_arguments", ("files must be a JSON array",)) from None
        if not isinstance(items, list) or not items:
            raise SlackFail("invalid_arguments", ("files must be a non-empty array",))
        uploads: list[tuple[UploadedFile, str]] = []
        for item in items:
            upload = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if upload is None or upload.completed:
                raise SlackFail("file_not_found")
            if upload.content is None:
                raise SlackFail("file_upload_failed", ("no bytes were posted to the upload_url",))
            uploads.append((upload, str(item.get("title") or upload.filename)))
        channel = args.get("channel_id")
        thread_ts = args.get("thread_ts")
        if thread_ts and not channel:
            raise SlackFail("invalid_arguments", ("thread_ts needs channel_id",))
        if channel:
            channel = self._channel_id({"channel": channel})
            if thread_ts and (channel, str(thread_ts)) not in self.messages:
                raise SlackFail("invalid_thread_ts")
        shared: list[dict[str, Any]] = []
        for upload, title in uploads:
            upload.completed = True
            upload.title = title
            upload.channel = channel or None
            upload.thread_ts = str(thread_ts) if thread_ts else None
            shared.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": title,
                    "size": upload.length,
                }
            )
        if channel:
            # Sharing posts a message with the files (in the thread, when one is given).
            ts = self._next_ts()
            message = self._message(
                {"text": str(args.get("initial_comment") or ""), "thread_ts": thread_ts}, ts
            )
            message["files"] = shared
            self.messages[(channel, ts)] = message
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    def files_in_thread(self, channel: str, thread_ts: str) -> list[UploadedFile]:
        """Files completed into a thread, in upload order (a test's view of what users see)."""
        return [f for f in self.files.values() if f.channel == channel and f.thread_ts == thread_ts]
