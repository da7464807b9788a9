"""DaemonService: the daemon's own state."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from daemon import eventcodec
from daemon.diskspace import SpaceGuard
from daemon.supervision.states import RunnerState
from daemon.supervision.supervisor import Supervisor
from daemon.tasks import TaskManager
from protos import daemon_service_pb2, daemon_service_pb2_grpc

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
        space: SpaceGuard,
    ) -> None:
        self._info = info
        self._tasks = tasks
        self._supervisor = supervisor
        self._shutdown = shutdown
        self._clock = clock
        self._space = space

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
            problems=[p for p in (self._space.problem(),) if p],
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
