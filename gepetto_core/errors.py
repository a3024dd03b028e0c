"""gepetto's own error types.

Adapters translate library errors (asyncpg, aiohttp, kubernetes_asyncio, slack_sdk) into these
with ``raise ... from e``, so nothing above the adapters needs to know which library failed.

    GepettoError                      base; ``str(e)`` is one line fit for an operator
    ├── ConfigError                   a setting is missing or wrong (names the variable)
    ├── UsageError                    a command line could not be parsed
    ├── NotFoundError                 an id or name matches nothing (lists close matches)
    │   └── AmbiguousNameError        a name prefix matches more than one thing
    ├── InvalidInputError             malformed input (bad UUID, bad JSON, ...)
    ├── PermissionDeniedError         the caller may not do this
    ├── ConflictError                 the state changed under us (409, stale plan, busy GPU)
    │   └── InsufficientGpusError     a claim could not be satisfied in full
    ├── StoreError                    PostgreSQL failed
    ├── ValidatorError                the validator API failed
    │   ├── ValidatorAuthError        401/403: our signature or hotkey was refused
    │   ├── ValidatorNotFoundError    404
    │   ├── NoCapacityError           423: the validator wants no more instances (not alarming)
    │   └── ValidatorUnavailableError 5xx, timeout, broken stream
    ├── ClusterError                  the Kubernetes API failed
    │   ├── ClusterNotFoundError      404
    │   ├── ClusterConflictError      409
    │   ├── ClusterForbiddenError     401/403
    │   └── ClusterUnavailableError   5xx, timeout, connection refused
    └── AgentError                    a server's monitoring agent refused or did not answer
"""

from __future__ import annotations

from collections.abc import Sequence


class GepettoError(Exception):
    """Base of every error gepetto raises on purpose."""


class ConfigError(GepettoError):
    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


class UsageError(GepettoError):
    """A command line that could not be parsed; the message says what was expected."""


class NotFoundError(GepettoError):
    def __init__(self, kind: str, key: str, close_matches: Sequence[str] = ()) -> None:
        self.kind = kind
        self.key = key
        self.close_matches = list(close_matches)
        hint = f" (did you mean: {', '.join(self.close_matches)}?)" if self.close_matches else ""
        super().__init__(f"unknown {kind} {key!r}{hint}")


class AmbiguousNameError(NotFoundError):
    def __init__(self, kind: str, key: str, candidates: Sequence[str]) -> None:
        GepettoError.__init__(
            self, f"{kind} {key!r} is ambiguous; it matches: {', '.join(candidates)}"
        )
        self.kind = kind
        self.key = key
        self.close_matches = list(candidates)


class InvalidInputError(GepettoError):
    pass


class PermissionDeniedError(GepettoError):
    pass


class ConflictError(GepettoError):
    pass


class InsufficientGpusError(ConflictError):
    pass


class StoreError(GepettoError):
    pass


class ValidatorError(GepettoError):
    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ValidatorAuthError(ValidatorError):
    pass


class ValidatorNotFoundError(ValidatorError):
    pass


class NoCapacityError(ValidatorError):
    pass


class ValidatorUnavailableError(ValidatorError):
    pass


class ClusterError(GepettoError):
    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ClusterNotFoundError(ClusterError):
    pass


class ClusterConflictError(ClusterError):
    pass


class ClusterForbiddenError(ClusterError):
    pass


class ClusterUnavailableError(ClusterError):
    pass


class AgentError(GepettoError):
    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
