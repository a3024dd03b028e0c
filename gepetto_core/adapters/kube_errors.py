"""Kubernetes client failures (kubernetes-asyncio, aiohttp) as the project's ClusterError
types (gepetto_core/errors.py), for every Kubernetes adapter."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core.errors import (
    ClusterConflictError,
    ClusterError,
    ClusterForbiddenError,
    ClusterNotFoundError,
    ClusterUnavailableError,
)


def translate_error(error: BaseException, what: str) -> ClusterError:
    """A kubernetes-asyncio / aiohttp failure as the project's ClusterError subtype."""
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        detail = _status_message(error)
        message = f"{what}: HTTP {status} {detail}".rstrip()
        if status == 404:
            return ClusterNotFoundError(message, status)
        if status == 409:
            return ClusterConflictError(message, status)
        if status in (401, 403):
            return ClusterForbiddenError(message, status)
        if status == 0 or status == 429 or status >= 500:
            return ClusterUnavailableError(message, status)
        return ClusterError(message, status)
    if isinstance(error, TimeoutError):
        return ClusterUnavailableError(f"{what}: timed out")
    return ClusterUnavailableError(f"{what}: {type(error).__name__}: {error}")


def _status_message(error: ApiException) -> str:
    """The `message` of a Kubernetes Status body (the reason phrase when there is none)."""
    body: Any = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
            if isinstance(parsed, dict) and parsed.get("message"):
                return str(parsed["message"])[:300]
    return str(error.reason or "")


TRANSLATED = (ApiException, aiohttp.ClientError, TimeoutError, OSError)
