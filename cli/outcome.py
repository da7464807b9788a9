"""How a finished task becomes the CLI's exit code, as `docker run` does it."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from cli.errors import ExitCode
from protos import task_pb2


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    # What to tell the user on stderr; None when the program's own output says it.
    message: str | None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def task_outcome(task_id: str, state: int, result: task_pb2.TaskResult) -> Outcome:
    """SUCCEEDED → 0; FAILED → the program's exit code (killed by signal N → 128+N),
    or 1 when it never exited; TIMED_OUT → 124; CANCELLED → 130."""
    error = result.error.strip()
    if state == task_pb2.TASK_STATE_SUCCEEDED:
        return Outcome(ExitCode.OK, None)
    if state == task_pb2.TASK_STATE_TIMED_OUT:
        return Outcome(ExitCode.TIMED_OUT, f"task {task_id} timed out" + _why(error))
    if state == task_pb2.TASK_STATE_CANCELLED:
        return Outcome(ExitCode.INTERRUPTED, f"task {task_id} was cancelled" + _why(error))
    if state == task_pb2.TASK_STATE_FAILED:
        if result.has_exit_code:
            code = result.exit_code
            if code < 0 and -code < 128:
                return Outcome(128 - code, f"task {task_id} was killed by {_signal_name(-code)}")
            if 0 < code < 256:
                return Outcome(code, None)
            # Out of the 8 bits a shell can see (or 0 on a failure): still a failure.
            return Outcome(ExitCode.FAILURE, f"task {task_id} failed with exit code {code}")
        return Outcome(ExitCode.FAILURE, f"task {task_id} failed" + _why(error))
    return Outcome(
        ExitCode.FAILURE, f"task {task_id} ended in an unexpected state ({state})" + _why(error)
    )


def _why(error: str) -> str:
    # A bare "cancelled" or "timed out" would only repeat the message.
    if not error or error.lower().rstrip(".") in ("cancelled", "canceled", "timed out"):
        return ""
    return f": {error}"


def agent_outcome(task_id: str, state: int, result: task_pb2.TaskResult) -> Outcome:
    """An agent run has no exit code of its own: SUCCEEDED → 0, FAILED → 1 (with its
    error), TIMED_OUT → 124, CANCELLED → 130."""
    error = result.error.strip()
    if state == task_pb2.TASK_STATE_SUCCEEDED:
        return Outcome(ExitCode.OK, None)
    if state == task_pb2.TASK_STATE_TIMED_OUT:
        return Outcome(ExitCode.TIMED_OUT, f"task {task_id} timed out" + _why(error))
    if state == task_pb2.TASK_STATE_CANCELLED:
        return Outcome(ExitCode.INTERRUPTED, f"task {task_id} was cancelled" + _why(error))
    if state == task_pb2.TASK_STATE_FAILED:
        return Outcome(ExitCode.FAILURE, f"task {task_id} failed" + _why(error))
    return Outcome(
        ExitCode.FAILURE, f"task {task_id} ended in an unexpected state ({state})" + _why(error)
    )
