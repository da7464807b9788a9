"""The supervision rules, driven by a fake clock: no sleeping, no processes."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from daemon.config import AutoRestart, RunnerPolicy
from daemon.supervision.policy import (
    Decision,
    ExitKind,
    History,
    backoff,
    classify,
    decide,
    is_hung,
    start_timed_out,
)
from daemon.supervision.states import TRANSITIONS, InvalidTransition, RunnerState, check

S = RunnerState
RULES = RunnerPolicy()


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def rng() -> random.Random:
    return random.Random(7)


def crash(history: History, clock: Clock, running_for: float = 1.0, **rules: object) -> Decision:
    policy = replace(RULES, **rules)  # type: ignore[arg-type]
    return decide(policy, history, ExitKind.UNEXPECTED, clock.now, running_for, rng())


def test_classify() -> None:
    def kind(code: int, **flags: bool) -> ExitKind:
        args = {"stop_requested": False, "hung": False, "registered": True} | flags
        return classify(code, policy=RULES, **args)

    assert kind(0) is ExitKind.EXPECTED
    assert kind(1) is ExitKind.UNEXPECTED
    assert kind(-9) is ExitKind.UNEXPECTED
    assert kind(-15, stop_requested=True) is ExitKind.STOPPED
    assert kind(-9, hung=True) is ExitKind.HUNG
    assert kind(0, registered=False) is ExitKind.START_FAILED
    assert (
        classify(
            2,
            stop_requested=False,
            hung=False,
            registered=True,
            policy=replace(RULES, exitcodes=frozenset({0, 2})),
        )
        is ExitKind.EXPECTED
    )


def test_first_crash_after_running_restarts_at_once_then_backs_off() -> None:
    clock, history = Clock(), History()
    first = crash(history, clock)
    assert first.state is S.STARTING and first.delay == 0
    delays = []
    for _ in range(3):
        clock.advance(1)
        decision = crash(history, clock)
        assert decision.state is S.BACKOFF
        delays.append(decision.delay)
    # 0.5 s doubling, within the ±20 % jitter.
    for got, want in zip(delays, [0.5, 1.0, 2.0], strict=True):
        assert want * 0.8 <= got <= want * 1.2


def test_backoff_is_capped() -> None:
    assert all(backoff(RULES, step, rng()) <= 30.0 for step in range(1, 40))
    assert backoff(RULES, 30, rng()) == 30.0


def test_start_failures_back_off_from_the_first() -> None:
    clock, history = Clock(), History()
    decision = decide(RULES, history, ExitKind.START_FAILED, clock.now, 0.0, rng())
    assert decision.state is S.BACKOFF and 0.4 <= decision.delay <= 0.6


def test_stable_period_resets_the_count() -> None:
    clock, history = Clock(), History()
    crash(history, clock)
    clock.advance(1)
    assert crash(history, clock).state is S.BACKOFF
    # It then stayed RUNNING past the stable period: the next crash is a first again.
    clock.advance(120)
    assert crash(history, clock, running_for=61).state is S.STARTING


def test_more_than_five_failures_in_the_window_is_fatal() -> None:
    clock, history = Clock(), History()
    for _ in range(5):
        assert crash(history, clock).state is not S.FATAL
        clock.advance(10)
    fatal = crash(history, clock)
    assert fatal.state is S.FATAL
    assert "6 failures in 300 s" in fatal.reason and "stigmer runner start" in fatal.reason


def test_failures_outside_the_window_are_forgotten() -> None:
    clock, history = Clock(), History()
    for _ in range(5):
        crash(history, clock)
        clock.advance(70)  # five failures over 350 s: never more than five in 300 s
    assert crash(history, clock).state is not S.FATAL


def test_autorestart_rules() -> None:
    clock, history = Clock(), History()
    expected = decide(RULES, history, ExitKind.EXPECTED, clock.now, 5, rng())
    assert expected.state is S.EXITED
    always = replace(RULES, autorestart=AutoRestart.ALWAYS)
    assert decide(always, history, ExitKind.EXPECTED, clock.now, 5, rng()).state is S.STARTING
    never = replace(RULES, autorestart=AutoRestart.NEVER)
    assert decide(never, history, ExitKind.UNEXPECTED, clock.now, 5, rng()).state is S.EXITED
    # A runner that cannot start is retried whatever autorestart says (as supervisord does).
    assert decide(never, history, ExitKind.START_FAILED, clock.now, 0, rng()).state is S.BACKOFF
    assert decide(RULES, history, ExitKind.STOPPED, clock.now, 5, rng()).state is S.STOPPED
    assert history.consecutive == 1


def test_hung_counts_as_a_failure() -> None:
    clock, history = Clock(), History()
    assert decide(RULES, history, ExitKind.HUNG, clock.now, 5, rng()).state is S.STARTING
    assert history.consecutive == 1


def test_hang_and_start_timeouts() -> None:
    assert not is_hung(100.0, 115.0, RULES)
    assert is_hung(100.0, 115.1, RULES)
    assert not start_timed_out(100.0, 110.0, RULES)
    assert start_timed_out(100.0, 110.1, RULES)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.STOPPED, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.STARTING, S.BACKOFF),
        (S.RUNNING, S.STOPPING),
        (S.RUNNING, S.EXITED),
        (S.EXITED, S.STARTING),
        (S.EXITED, S.BACKOFF),
        (S.BACKOFF, S.STARTING),
        (S.BACKOFF, S.FATAL),
        (S.STOPPING, S.STOPPED),
        (S.STOPPING, S.UNKNOWN),
        (S.FATAL, S.STARTING),
    ],
)
def test_supervisord_moves_are_allowed(current: RunnerState, target: RunnerState) -> None:
    check(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.STOPPED, S.RUNNING), (S.FATAL, S.RUNNING), (S.BACKOFF, S.RUNNING), (S.RUNNING, S.STOPPED)],
)
def test_impossible_moves_are_refused(current: RunnerState, target: RunnerState) -> None:
    with pytest.raises(InvalidTransition):
        check(current, target)


def test_every_state_can_be_left() -> None:
    assert set(TRANSITIONS) == set(RunnerState)
    assert all(TRANSITIONS[s] for s in RunnerState)
