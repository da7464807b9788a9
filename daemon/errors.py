"""Errors the core raises for callers; the API edge maps each to a gRPC status with a
google.rpc.ErrorInfo (reason, domain stigmer.local, metadata) in its rich details."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

DOMAIN = "stigmer.local"


class DaemonError(Exception):
    """An error a caller can act on; its message says what and how to fix it.

    `reason` is the machine-readable UPPER_SNAKE name a client branches on; `metadata`
    holds the ids or fields it concerns (never a secret: values are redacted at the edge).
    """

    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self, message: str = "", *, reason: str = "", metadata: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason or type(self).default_reason
        self.metadata: dict[str, str] = {k: str(v) for k, v in (metadata or {}).items()}

    @property
    def generic(self) -> bool:
        """No more specific reason was given than the class's own."""
        return self.reason == type(self).default_reason


class InvalidArgument(DaemonError):
    default_reason = "INVALID_FIELD"

    def __init__(
        self,
        field: str,
        value: object,
        fix: str,
        *,
        reason: str = "",
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            f"{field}: {shown} is not valid: {fix}",
            reason=reason,
            metadata={"field": field, **(metadata or {})},
        )
        self.field = field


class NotFound(DaemonError):
    default_reason = "NOT_FOUND"


class AlreadyExists(DaemonError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DaemonError):
    default_reason = "FAILED_PRECONDITION"


class Aborted(DaemonError):
    default_reason = "ABORTED"


class ResourceExhausted(DaemonError):
    default_reason = "RESOURCE_EXHAUSTED"


class StorageFull(ResourceExhausted):
    """The state folder has no room: nothing new can be stored until space returns."""

    default_reason = "STATE_DISK_FULL"


class Unimplemented(DaemonError):
    default_reason = "UNIMPLEMENTED"


class OutOfRange(DaemonError):
    default_reason = "OUT_OF_RANGE"


@contextmanager
def reason_for(kind: type[DaemonError], reason: str, **metadata: object) -> Iterator[None]:
    """Gives errors of `kind` raised inside (by code that does not know the caller's
    view) `reason` and `metadata`, unless they already carry a specific reason."""
    try:
        yield
    except kind as exc:
        if exc.generic:
            exc.reason = reason
            exc.metadata = {**{k: str(v) for k, v in metadata.items()}, **exc.metadata}
        raise
