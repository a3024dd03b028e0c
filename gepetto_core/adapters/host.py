"""Facts about the machine this process runs on: the local user (the CLI's audit actor) and a
process identity (the leader-election holder). Read here so the layers above stay pure."""

from __future__ import annotations

import getpass
import os
import socket


def local_user() -> str:
    """The login name of whoever runs the CLI."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers)
        return f"uid{os.getuid()}"


def process_identity() -> str:
    """Unique per process: a restarted container must not pass for its predecessor's twin
    while that one may still be alive elsewhere."""
    return f"{socket.gethostname()}-{os.getpid()}"
