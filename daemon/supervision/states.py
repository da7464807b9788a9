"""Supervision states, with supervisord's names and meanings, and the moves between them."""

from __future__ import annotations

import enum


class RunnerState(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"
    UNKNOWN = "UNKNOWN"


S = RunnerState

# Where each state may go. Beyond supervisord: RUNNING may go to BACKOFF (a crash
# after start backs off too), and EXITED to BACKOFF or FATAL (the failure window).
TRANSITIONS: dict[RunnerState, frozenset[RunnerState]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.STOPPING, S.EXITED, S.FATAL}),
    S.RUNNING: frozenset({S.STOPPING, S.EXITED, S.BACKOFF, S.FATAL, S.STARTING}),
    S.BACKOFF: frozenset({S.STARTING, S.FATAL, S.STOPPED}),
    # Back to RUNNING when a start cancels a drain that has not ended yet.
    S.STOPPING: frozenset({S.STOPPED, S.UNKNOWN, S.STARTING, S.RUNNING}),
    S.EXITED: frozenset({S.STARTING, S.BACKOFF, S.FATAL, S.STOPPED}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
    S.UNKNOWN: frozenset({S.STOPPED, S.STARTING}),
}


class InvalidTransition(Exception):
    pass


def check(current: RunnerState, target: RunnerState) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"{current.value} -> {target.value} is not a supervision move")
