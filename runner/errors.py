"""How the runner classifies what goes wrong when it talks to the daemon."""

from __future__ import annotations


class Transient(Exception):
    """The call may not have reached the daemon, or its answer was lost: retry it."""


class DaemonUnavailable(Exception):
    """The daemon stayed unreachable through every retry: the runner gives up."""


class AttemptLost(Exception):
    """The task attempt is no longer this runner's (cancelled, requeued or ended)."""


class RunnerStopping(Exception):
    """The daemon is stopping this runner: take no more work."""
