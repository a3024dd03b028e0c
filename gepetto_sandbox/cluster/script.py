"""What a test scripts into the sandbox's pods: how long each step takes, and which pods fail
and how (the controllers in `controllers.py` play them out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PodTimings:
    """Seconds a pod spends in each step; termination is capped by the pod's grace period."""

    start_seconds: float = 0.05
    ready_seconds: float = 0.05
    termination_seconds: float = 0.05


@dataclass(frozen=True)
class PodFault:
    """A scripted failure for the pods of one deployment / chute / job name.

    image_pull: the image never pulls (ErrImagePull → ImagePullBackOff, pod stays Pending);
    crash: the container exits with `exit_code` `after_seconds` after it started."""

    kind: Literal["image_pull", "crash"]
    exit_code: int = 1
    after_seconds: float = 0.0
