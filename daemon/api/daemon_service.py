"""DaemonService and RunnerService.ListRunners: the daemon's own state."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from daemon import eventcodec
from daemon.errors import Unimplemented
from daemon.supervisor import Runner, RunnerState, Supervisor
from daemon.tasks import TaskManager
from protos import (
    daemon_service_pb2,
    daemon_service_pb2_grpc,
    runner_pb2,
    runner_service_pb2,
    runner_service_pb2_grpc,
)

Context = Any


@dataclass(frozen=True)
class DaemonInfo:
    version: str
    start_time: float
    socket_path: str
    tcp_address: str
    state_dir: str
    config_path: str
    log_path: str


class DaemonService(daemon_service_pb2_grpc.DaemonServiceServicer):
    def __init__(
        self,
        info: DaemonInfo,
        tasks: TaskManager,
        supervisor: Supervisor,
        shutdown: asyncio.Event,
        clock: Callable[[], float],
    ) -> None:
        self._info = info
        self._tasks = tasks
        self._supervisor = supervisor
        self._shutdown = shutdown
        self._clock = clock

    async def GetStatus(
        self, request: daemon_service_pb2.GetStatusRequest, context: Context
    ) -> daemon_service_pb2.DaemonStatus:
        runners = self._supervisor.runners()
        started = Timestamp()
        started.FromNanoseconds(int(self._info.start_time * 1e9))
        return daemon_service_pb2.DaemonStatus(
            version=self._info.version,
            pid=os.getpid(),
            start_time=started,
            uptime_seconds=self._clock() - self._info.start_time,
            socket_path=self._info.socket_path,
            tcp_address=self._info.tcp_address,
            state_dir=self._info.state_dir,
            config_path=self._info.config_path,
            log_path=self._info.log_path,
            runners_total=len(runners),
            runners_running=sum(r.state is RunnerState.RUNNING for r in runners),
            task_counts=[
                daemon_service_pb2.TaskStateCount(
                    state=eventcodec.state_to_proto(state), count=count
                )
                for state, count in sorted(self._tasks.counts().items(), key=lambda i: i[0].value)
            ],
        )

    async def Shutdown(
        self, request: daemon_service_pb2.ShutdownRequest, context: Context
    ) -> daemon_service_pb2.ShutdownResponse:
        # Answer first: the main loop sees the event and stops the server gracefully.
        asyncio.get_running_loop().call_soon(self._shutdown.set)
        return daemon_service_pb2.ShutdownResponse()


def runner_to_proto(runner: Runner) -> runner_pb2.Runner:
    message = runner_pb2.Runner(
        id=runner.id,
        state=runner_pb2.RunnerState.Value(f"RUNNER_STATE_{runner.state.value}"),
        pid=runner.pid,
        restarts=runner.restarts,
        last_exit_code=runner.last_exit_code or 0,
        reason=runner.reason,
    )
    if runner.start_time is not None and runner.pid:
        message.start_time.FromNanoseconds(int(runner.start_time * 1e9))
    return message


_LATER = (
    "comes with full runner supervision in a later version; `stigmer local restart` restarts all"
)


class RunnerService(runner_service_pb2_grpc.RunnerServiceServicer):
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    async def ListRunners(
        self, request: runner_service_pb2.ListRunnersRequest, context: Context
    ) -> runner_service_pb2.ListRunnersResponse:
        return runner_service_pb2.ListRunnersResponse(
            runners=[runner_to_proto(r) for r in self._supervisor.runners()]
        )

    async def StartRunner(self, request: Any, context: Context) -> Any:
        raise Unimplemented(f"StartRunner {_LATER}")

    async def StopRunner(self, request: Any, context: Context) -> Any:
        raise Unimplemented(f"StopRunner {_LATER}")

    async def RestartRunner(self, request: Any, context: Context) -> Any:
        raise Unimplemented(f"RestartRunner {_LATER}")

    async def ScaleRunners(self, request: Any, context: Context) -> Any:
        raise Unimplemented(f"ScaleRunners {_LATER}; set [runners] count in config.toml")

    async def TailRunnerLog(self, request: Any, context: Context) -> Any:
        raise Unimplemented(f"TailRunnerLog {_LATER}; runner logs are in the state dir's logs/")
        yield  # pragma: no cover - makes this a streaming method
