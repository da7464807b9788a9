"""What to do when a runner's process ends: pure functions of the policy, the
runner's history and the time, so every rule is tested without sleeping."""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, field

from daemon.config import AutoRestart, RunnerPolicy
from daemon.supervision.states import RunnerState


class ExitKind(enum.Enum):
    STOPPED = "stopped"  # we asked it to stop
    EXPECTED = "expected"  # exit code in exitcodes
    UNEXPECTED = "unexpected"  # any other code, or a signal we did not send
    HUNG = "hung"  # we killed it: no heartbeat
    START_FAILED = "start failed"  # ended (or was killed) before it registered


@dataclass
class History:
    """A runner's failures, as the restart rules need them."""

    consecutive: int = 0
    failures: deque[float] = field(default_factory=deque)

    def reset(self) -> None:
        self.consecutive = 0
        self.failures.clear()


@dataclass(frozen=True)
class Decision:
    state: RunnerState  # STARTING (at once), BACKOFF, EXITED, FATAL or STOPPED
    delay: float = 0.0
    reason: str = ""


def classify(
    exit_code: int, *, stop_requested: bool, hung: bool, registered: bool, policy: RunnerPolicy
) -> ExitKind:
    if stop_requested:
        return ExitKind.STOPPED
    if hung:
        return ExitKind.HUNG
    if not registered:
        return ExitKind.START_FAILED
    if exit_code >= 0 and exit_code in policy.exitcodes:
        return ExitKind.EXPECTED
    return ExitKind.UNEXPECTED


def backoff(policy: RunnerPolicy, step: int, rng: random.Random) -> float:
    """Delay before restart number `step` (from 1) of a failing runner, with jitter so
    runners that failed together do not restart in lockstep."""
    base: float = policy.backoff_initial_seconds * 2 ** (step - 1)
    return min(policy.backoff_max_seconds, base * rng.uniform(0.8, 1.2))


def decide(
    policy: RunnerPolicy,
    history: History,
    kind: ExitKind,
    now: float,
    running_for: float,
    rng: random.Random,
) -> Decision:
    """Records the exit in `history` and says what state comes next."""
    if kind is ExitKind.STOPPED:
        return Decision(RunnerState.STOPPED)
    if kind is ExitKind.EXPECTED:
        if policy.autorestart is AutoRestart.ALWAYS:
            return Decision(RunnerState.STARTING, reason="exited as expected; autorestart=always")
        return Decision(RunnerState.EXITED, reason="exited as expected")
    if kind is not ExitKind.START_FAILED and policy.autorestart is AutoRestart.NEVER:
        return Decision(RunnerState.EXITED, reason=f"{kind.value}; autorestart=never")
    if running_for >= policy.stable_seconds:
        history.consecutive = 0
    history.consecutive += 1
    history.failures.append(now)
    while history.failures and now - history.failures[0] > policy.failure_window_seconds:
        history.failures.popleft()
    if len(history.failures) > policy.max_failures:
        return Decision(
            RunnerState.FATAL,
            reason=f"{len(history.failures)} failures in {policy.failure_window_seconds:g} s"
            f" (more than {policy.max_failures}); start it again with `stigmer runner start`",
        )
    # A runner that had been working is given one immediate restart; a runner
    # that cannot even start backs off from the first failure.
    step = history.consecutive - (0 if kind is ExitKind.START_FAILED else 1)
    if step <= 0:
        return Decision(RunnerState.STARTING, reason=f"{kind.value}; restarting at once")
    delay = backoff(policy, step, rng)
    return Decision(RunnerState.BACKOFF, delay, f"{kind.value}; restarting in {delay:.2f} s")


def is_hung(last_seen: float, now: float, policy: RunnerPolicy) -> bool:
    return now - last_seen > policy.heartbeat_timeout_seconds


def start_timed_out(started: float, now: float, policy: RunnerPolicy) -> bool:
    return now - started > policy.start_timeout_seconds
