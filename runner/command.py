"""Running one attempt of a COMMAND task: spawn, stream output, heartbeat, timeout, cancel."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protos import event_pb2, task_pb2
from runner.attempt import Attempt, Stop
from runner.childproc import ChildProcess
from runner.client import TaskCalls
from runner.errors import AttemptLost, DaemonUnavailable
from runner.heartbeat import keep_alive
from runner.launch import Launch, LaunchError, prepare, spawn_error
from runner.procgroup import kill_group, signal_group

log = logging.getLogger(__name__)

KILL_GRACE = 2.0
# How long the pipes may stay open once the program is gone and its group killed
# (only a process that left the group can hold them that long).
PIPE_DRAIN_TIMEOUT = 5.0
CHUNK = 65536
_STREAMS = {1: event_pb2.LOG_STREAM_STDOUT, 2: event_pb2.LOG_STREAM_STDERR}

S = task_pb2.TaskState


@dataclass(frozen=True)
class Outcome:
    state: task_pb2.TaskState.ValueType
    result: task_pb2.TaskResult


def failed(error: str) -> Outcome:
    return Outcome(S.TASK_STATE_FAILED, task_pb2.TaskResult(error=error))


async def run_command(
    client: TaskCalls,
    task: task_pb2.Task,
    attempt: int,
    claim_env: Mapping[str, str],
    *,
    heartbeat_wait: float = 1.0,
    on_drain: Callable[[], None] = lambda: None,
    kill_grace: float = KILL_GRACE,
) -> Outcome | None:
    """Runs the task's program to its end and says how it ended.

    None means the attempt is no longer ours: drop it without completing.
    Raises DaemonUnavailable when its events could not be delivered.
    """
    try:
        launch = prepare(task, claim_env, os.environ)
    except LaunchError as exc:
        return failed(str(exc))
    try:
        child = await ChildProcess.spawn(launch.argv, launch.cwd, launch.env)
    except OSError as exc:
        return failed(spawn_error(exc, launch))
    run = _Run(client, task, attempt, child, launch, kill_grace)
    try:
        return await run.supervise(heartbeat_wait, on_drain)
    except asyncio.CancelledError:
        # The runner is shutting down; the daemon decides the task's fate.
        await kill_group(child.pid, kill_grace)
        raise
    finally:
        await run.close()


class _Run(Attempt):
    """The moving parts of one running attempt."""

    def __init__(
        self,
        client: TaskCalls,
        task: task_pb2.Task,
        attempt: int,
        child: ChildProcess,
        launch: Launch,
        kill_grace: float,
    ) -> None:
        super().__init__(client, task.id, attempt)
        self._task = task
        self._child = child
        self._launch = launch
        self._kill_grace = kill_grace
        self._client = client
        self._attempt = attempt
        self._paused = False

    async def supervise(
        self, heartbeat_wait: float, on_drain: Callable[[], None]
    ) -> Outcome | None:
        child = self._child
        log.info("task %s attempt %d: started, pid %d", self._task.id, self._attempt, child.pid)
        self._publisher.start()
        self._publisher.publish(
            event_pb2.Event(
                started=event_pb2.Started(pid=child.pid, workspace_path=self._launch.workspace)
            )
        )
        child.connect_output(self._on_output)
        self._spawn_helper(
            keep_alive(
                self._client,
                self._task.id,
                self._attempt,
                heartbeat_wait,
                on_cancel=lambda: self._decide(Stop.CANCELLED),
                on_lost=lambda: self._decide(Stop.LOST),
                on_drain=on_drain,
            )
        )
        timeout = self._task.spec.command.timeout_seconds
        if timeout > 0:
            self._timer = asyncio.get_running_loop().call_later(
                timeout, self._decide, Stop.TIMED_OUT
            )

        ends: list[asyncio.Future[Any]] = [child.exited, self._stop]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        stop = None if child.exited.done() else self._stop.result()
        if stop is None:
            # A background process left behind would hold the pipes open forever.
            signal_group(child.pid, signal.SIGKILL)
        else:
            await kill_group(child.pid, self._kill_grace)
            if stop is Stop.LOST:
                return None
            if stop is Stop.UNAVAILABLE:
                raise DaemonUnavailable(f"events not delivered: {self._delivery_error}")
            await asyncio.wait([child.exited], timeout=self._kill_grace)

        await self._drain_pipes()
        try:
            await self._publisher.flush()
        except AttemptLost:
            return None
        return self._outcome(stop, timeout)

    async def close(self) -> None:
        await self._end_helpers()
        self._child.close()

    def _on_output(self, fd: int, data: bytes) -> None:
        stream = _STREAMS[fd]
        for start in range(0, len(data), CHUNK):
            self._publisher.publish(
                event_pb2.Event(log=event_pb2.Log(stream=stream, data=data[start : start + CHUNK]))
            )
        if not self._paused and not self._publisher.has_room:
            # Backpressure: the program blocks on its writes until events drain.
            self._paused = True
            self._child.pause_output()
            self._spawn_helper(self._resume_when_room())

    async def _resume_when_room(self) -> None:
        await self._publisher.wait_room()
        self._paused = False
        self._child.resume_output()

    async def _drain_pipes(self) -> None:
        while True:
            done, _ = await asyncio.wait([self._child.pipes_closed], timeout=PIPE_DRAIN_TIMEOUT)
            if done:
                return
            # Paused output is the daemon being slow, not a process holding the pipes.
            if not self._paused:
                break
        log.warning(
            "task %s: output still open %.0f s after the program ended; closing it",
            self._task.id,
            PIPE_DRAIN_TIMEOUT,
        )
        self._child.close()

    def _outcome(self, stop: Stop | None, timeout: float) -> Outcome:
        code = self._child.returncode
        result = task_pb2.TaskResult(exit_code=code or 0, has_exit_code=code is not None)
        if stop is Stop.CANCELLED:
            result.error = "cancelled"
            return Outcome(S.TASK_STATE_CANCELLED, result)
        if stop is Stop.TIMED_OUT:
            result.error = f"timed out after {timeout:g} s"
            return Outcome(S.TASK_STATE_TIMED_OUT, result)
        if code == 0:
            return Outcome(S.TASK_STATE_SUCCEEDED, result)
        result.error = exit_description(code)
        return Outcome(S.TASK_STATE_FAILED, result)


def exit_description(code: int | None) -> str:
    if code is None:
        return "the program's exit status is unknown"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"killed by signal {-code}"
    return f"killed by signal {-code} ({name})"
