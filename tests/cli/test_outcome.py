from __future__ import annotations

import pytest

from cli.outcome import agent_outcome, task_outcome
from protos import task_pb2

S = task_pb2


def result(**kwargs: object) -> task_pb2.TaskResult:
    return task_pb2.TaskResult(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "res", "code"),
    [
        (S.TASK_STATE_SUCCEEDED, result(exit_code=0, has_exit_code=True), 0),
        (S.TASK_STATE_FAILED, result(exit_code=3, has_exit_code=True), 3),
        (S.TASK_STATE_FAILED, result(exit_code=255, has_exit_code=True), 255),
        (S.TASK_STATE_FAILED, result(exit_code=-9, has_exit_code=True), 137),
        (S.TASK_STATE_FAILED, result(exit_code=-15, has_exit_code=True), 143),
        (S.TASK_STATE_FAILED, result(exit_code=300, has_exit_code=True), 1),
        (S.TASK_STATE_FAILED, result(error="program not found: nope"), 1),
        (S.TASK_STATE_TIMED_OUT, result(error="timed out after 1 s"), 124),
        (S.TASK_STATE_CANCELLED, result(), 130),
    ],
)
def test_exit_codes(state: int, res: task_pb2.TaskResult, code: int) -> None:
    assert task_outcome("t-1", state, res).exit_code == code


def test_messages() -> None:
    assert task_outcome("t-1", S.TASK_STATE_SUCCEEDED, result()).message is None
    # The program's own stderr explains a plain non-zero exit.
    assert (
        task_outcome("t-1", S.TASK_STATE_FAILED, result(exit_code=2, has_exit_code=True)).message
        is None
    )
    failed = task_outcome("t-1", S.TASK_STATE_FAILED, result(error="program not found: nope"))
    assert failed.message == "task t-1 failed: program not found: nope"
    killed = task_outcome("t-1", S.TASK_STATE_FAILED, result(exit_code=-9, has_exit_code=True))
    assert killed.message == "task t-1 was killed by SIGKILL"
    timed_out = task_outcome("t-1", S.TASK_STATE_TIMED_OUT, result(error="timed out after 5 s"))
    assert timed_out.message == "task t-1 timed out: timed out after 5 s"
    cancelled = task_outcome("t-1", S.TASK_STATE_CANCELLED, result(error="cancelled"))
    assert cancelled.message == "task t-1 was cancelled"


@pytest.mark.parametrize(
    ("state", "res", "code", "message"),
    [
        (S.TASK_STATE_SUCCEEDED, result(summary="done"), 0, None),
        (
            S.TASK_STATE_FAILED,
            result(error="the API refused the key (401)"),
            1,
            "task t-1 failed: the API refused the key (401)",
        ),
        # An agent's failure is 1 even if a result carried an exit code.
        (S.TASK_STATE_FAILED, result(exit_code=3, has_exit_code=True), 1, "task t-1 failed"),
        (
            S.TASK_STATE_TIMED_OUT,
            result(error="wall-clock limit of 60 s reached"),
            124,
            "task t-1 timed out: wall-clock limit of 60 s reached",
        ),
        (S.TASK_STATE_CANCELLED, result(error="cancelled"), 130, "task t-1 was cancelled"),
        (S.TASK_STATE_RUNNING, result(), 1, "task t-1 ended in an unexpected state (3)"),
    ],
)
def test_agent_exit_codes(
    state: int, res: task_pb2.TaskResult, code: int, message: str | None
) -> None:
    outcome = agent_outcome("t-1", state, res)
    assert (outcome.exit_code, outcome.message) == (code, message)
