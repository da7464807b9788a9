"""Pure decisions about tasks; no I/O, no clock."""

from __future__ import annotations

from daemon.model import Task, TaskState


def after_runner_loss(task: Task) -> TaskState:
    """What becomes of an active task whose runner is gone: QUEUED for another
    attempt, or its terminal state."""
    if task.cancel_requested:
        return TaskState.CANCELLED
    if task.attempt < task.spec.max_attempts:
        return TaskState.QUEUED
    return TaskState.FAILED


def outcome_of_exit(exit_code: int) -> TaskState:
    return TaskState.SUCCEEDED if exit_code == 0 else TaskState.FAILED


def describe_exit(exit_code: int | None) -> str:
    """'exited with code 3', 'killed by signal 9 (SIGKILL)'."""
    import signal

    if exit_code is None:
        return "exited"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exit_code} ({name})"
    return f"exited with code {exit_code}"
