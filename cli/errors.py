"""The CLI's exit codes and the errors that carry them to `main()`.

Exit codes (one small table, used by every command):

    0    success
    1    general failure (the daemon refused or could not do it, a task failed
         without an exit code, the daemon did not start or stop in time)
    2    bad input or usage (a bad option, INVALID_ARGUMENT, OUT_OF_RANGE, a
         malformed task file: every problem is listed and nothing is submitted)
    3    the daemon is not running (no socket, or UNAVAILABLE)
    4    a secret is missing or unusable: a required key is not set and there
         is no terminal to ask for it, no usable keyring to store it in, or
         the API refused it (`--verify`)
    124  `stigmer run`: the task timed out (as timeout(1))
    130  interrupted (Ctrl-C), or `stigmer run`: the task was cancelled

`stigmer run --cmd` and `task watch --exit-status` otherwise exit with the
task's own exit code, as `docker run` does. An agent run (`stigmer run PROMPT`,
`stigmer task submit`) has no exit code of its own: 0 when it succeeded, 1 when
it failed (its error on stderr), 124 timed out, 130 cancelled or interrupted.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    DAEMON_NOT_RUNNING = 3
    SECRET = 4
    TIMED_OUT = 124
    INTERRUPTED = 130


DAEMON_NOT_RUNNING_MESSAGE = "daemon not running: start it with `stigmer local start`"


class CliError(Exception):
    """A failure to report as one line on stderr, with an exit code."""

    def __init__(
        self,
        message: str,
        exit_code: int = ExitCode.FAILURE,
        rpc_code: str = "",
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = int(exit_code)
        # The gRPC status code's name when the daemon refused a call ("" otherwise),
        # and its ErrorInfo reason and metadata (what a command may act on).
        self.rpc_code = rpc_code
        self.reason = reason
        self.metadata = metadata or {}


class UsageError(CliError):
    """Input that is wrong before anything is sent to the daemon."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}", ExitCode.USAGE)


class DaemonNotRunning(CliError):
    """No daemon answers on the socket."""

    def __init__(self, message: str = DAEMON_NOT_RUNNING_MESSAGE) -> None:
        super().__init__(message, ExitCode.DAEMON_NOT_RUNNING)
