"""Errors the core raises for callers; the API edge maps each to a gRPC status."""

from __future__ import annotations


class DaemonError(Exception):
    """An error a caller can act on; its message says what and how to fix it."""


class InvalidArgument(DaemonError):
    def __init__(self, field: str, value: object, fix: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {shown} is not valid: {fix}")
        self.field = field


class NotFound(DaemonError):
    pass


class AlreadyExists(DaemonError):
    pass


class FailedPrecondition(DaemonError):
    pass


class Aborted(DaemonError):
    pass


class ResourceExhausted(DaemonError):
    pass


class Unimplemented(DaemonError):
    pass


class OutOfRange(DaemonError):
    pass
