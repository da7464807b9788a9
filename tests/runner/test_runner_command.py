"""Running a command task against a fake daemon: events, outcome, timeout, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import psutil
import pytest

from protos import event_pb2, task_pb2, worker_service_pb2
from runner.client import Ack
from runner.command import run_command
from runner.errors import AttemptLost

WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]

S = task_pb2.TaskState


class FakeDaemon:
    """The two calls a running task makes, answered like the daemon would."""

    def __init__(self) -> None:
        self.events: dict[int, event_pb2.Event] = {}
        self.cancel = asyncio.Event()
        self.lost = False

    async def heartbeat(
        self, task_id: str, attempt: int, wait: float
    ) -> worker_service_pb2.HeartbeatResponse:
        if self.lost:
            raise AttemptLost("gone")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.cancel.wait(), wait)
        return worker_service_pb2.HeartbeatResponse(cancel_requested=self.cancel.is_set())

    async def publish(
        self, task_id: str, attempt: int, first_index: int, events: Sequence[event_pb2.Event]
    ) -> Ack:
        if self.lost:
            raise AttemptLost("gone")
        for offset, event in enumerate(events):
            self.events.setdefault(first_index + offset, event)
        return Ack(max(self.events), self.cancel.is_set())

    def ordered(self) -> list[event_pb2.Event]:
        assert sorted(self.events) == list(range(1, len(self.events) + 1))
        return [self.events[i] for i in sorted(self.events)]

    def output(self, stream: event_pb2.LogStream.ValueType) -> bytes:
        return b"".join(
            e.log.data for e in self.ordered() if e.HasField("log") and e.log.stream == stream
        )


def task(workspace: Path, *argv: str, timeout: float = 0, **env: str) -> task_pb2.Task:
    command = task_pb2.CommandSpec(argv=list(argv), env=env, timeout_seconds=timeout)
    return task_pb2.Task(
        id="t-0123456789ab", spec=task_pb2.TaskSpec(command=command), workspace_path=str(workspace)
    )


async def test_streams_output_and_reports_the_exit_code(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    script = "echo out; echo err >&2; pwd; exit 3"
    outcome = await run_command(daemon, task(tmp_path / "ws", "sh", "-c", script), 1, {})
    assert outcome is not None
    assert outcome.state == S.TASK_STATE_FAILED
    assert outcome.result.has_exit_code and outcome.result.exit_code == 3
    assert outcome.result.error == "exited with code 3"
    first = daemon.ordered()[0]
    assert first.WhichOneof("payload") == "started"
    assert first.started.pid > 0 and first.started.workspace_path == str(tmp_path / "ws")
    assert daemon.output(event_pb2.LOG_STREAM_STDOUT) == f"out\n{tmp_path / 'ws'}\n".encode()
    assert daemon.output(event_pb2.LOG_STREAM_STDERR) == b"err\n"


async def test_environment_is_scrubbed_and_extended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_RUNNER_TOKEN", "secret-token")
    daemon = FakeDaemon()
    script = 'echo "[$STIGMER_RUNNER_TOKEN][$A][$B]"'
    spec_task = task(tmp_path, "sh", "-c", script, B="from-spec")
    outcome = await run_command(daemon, spec_task, 1, {"A": "from-claim"})
    assert outcome is not None and outcome.state == S.TASK_STATE_SUCCEEDED
    assert daemon.output(event_pb2.LOG_STREAM_STDOUT) == b"[][from-claim][from-spec]\n"


async def test_a_background_child_does_not_hold_up_the_end(
    tmp_path: Path, wait_until: WaitUntil
) -> None:
    daemon = FakeDaemon()
    started = time.monotonic()
    script = "sleep 30 & echo $! > bg.pid; echo done"
    outcome = await run_command(daemon, task(tmp_path, "sh", "-c", script), 1, {})
    assert outcome is not None and outcome.state == S.TASK_STATE_SUCCEEDED
    assert time.monotonic() - started < 5
    background = int((tmp_path / "bg.pid").read_text())
    await wait_until(lambda: not psutil.pid_exists(background) or _zombie(background))


async def test_times_out(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    outcome = await run_command(daemon, task(tmp_path, "sleep", "30", timeout=0.3), 1, {})
    assert outcome is not None and outcome.state == S.TASK_STATE_TIMED_OUT
    assert outcome.result.error == "timed out after 0.3 s"


async def test_cancel_from_the_heartbeat(tmp_path: Path, wait_until: WaitUntil) -> None:
    daemon = FakeDaemon()
    run = asyncio.create_task(run_command(daemon, task(tmp_path, "sleep", "30"), 1, {}))
    await wait_until(lambda: len(daemon.events) >= 1)
    daemon.cancel.set()
    outcome = await asyncio.wait_for(run, 10)
    assert outcome is not None and outcome.state == S.TASK_STATE_CANCELLED
    assert outcome.result.error == "cancelled"
    assert outcome.result.exit_code == -15


async def test_a_lost_attempt_is_dropped_and_killed(tmp_path: Path, wait_until: WaitUntil) -> None:
    daemon = FakeDaemon()
    run = asyncio.create_task(run_command(daemon, task(tmp_path, "sleep", "30"), 1, {}))
    await wait_until(lambda: len(daemon.events) >= 1)
    pid = daemon.events[1].started.pid
    daemon.lost = True
    assert await asyncio.wait_for(run, 10) is None
    await wait_until(lambda: not psutil.pid_exists(pid) or _zombie(pid))


async def test_a_missing_program_fails_clearly(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    outcome = await run_command(daemon, task(tmp_path, "no-such-program-xyz"), 1, {})
    assert outcome is not None and outcome.state == S.TASK_STATE_FAILED
    assert outcome.result.error == "program not found: no-such-program-xyz (looked on PATH)"
    assert not outcome.result.has_exit_code


async def test_a_signal_death_is_described(tmp_path: Path) -> None:
    daemon = FakeDaemon()
    outcome = await run_command(daemon, task(tmp_path, "sh", "-c", "kill -9 $$"), 1, {})
    assert outcome is not None and outcome.state == S.TASK_STATE_FAILED
    assert outcome.result.exit_code == -9
    assert outcome.result.error == "killed by signal 9 (SIGKILL)"


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
