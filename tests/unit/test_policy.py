from daemon.model import CommandSpec, Task, TaskSpec, TaskState
from daemon.policy import after_runner_loss, describe_exit


def _task(attempt: int, max_attempts: int, cancel: bool = False) -> Task:
    return Task(
        id="t-1",
        request_id="",
        spec=TaskSpec(CommandSpec(("true",)), max_attempts=max_attempts),
        state=TaskState.RUNNING,
        attempt=attempt,
        runner_id="runner-0",
        cancel_requested=cancel,
        create_time=0.0,
        start_time=None,
        end_time=None,
        result=None,
        last_seq=0,
        workspace_path="/w",
    )


def test_lost_task_is_retried_while_attempts_remain() -> None:
    assert after_runner_loss(_task(1, 2)) is TaskState.QUEUED
    assert after_runner_loss(_task(2, 2)) is TaskState.FAILED


def test_lost_task_with_cancel_requested_ends_cancelled() -> None:
    assert after_runner_loss(_task(1, 3, cancel=True)) is TaskState.CANCELLED


def test_exit_descriptions() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
