"""RunnerService: the runners as a client sees and controls them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from daemon.errors import NotFound, OutOfRange, reason_for
from daemon.runlog import OffsetGone
from daemon.supervision.supervisor import Runner, Supervisor
from protos import runner_pb2, runner_service_pb2, runner_service_pb2_grpc

Context = Any


def runner_to_proto(runner: Runner, current_task: str | None) -> runner_pb2.Runner:
    cpu, rss = runner.sampler.sample(runner.pid) if runner.pid else (0.0, 0)
    message = runner_pb2.Runner(
        id=runner.id,
        state=runner_pb2.RunnerState.Value(f"RUNNER_STATE_{runner.state.value}"),
        pid=runner.pid,
        restarts=runner.restarts,
        current_task_id=current_task or "",
        last_exit_code=runner.last_exit_code or 0,
        reason=runner.reason,
        cpu_percent=cpu,
        rss_bytes=rss,
    )
    if runner.start_time is not None and runner.pid:
        message.start_time.FromNanoseconds(int(runner.start_time * 1e9))
    return message


class RunnerService(runner_service_pb2_grpc.RunnerServiceServicer):
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def _protos(self, runners: list[Runner]) -> list[runner_pb2.Runner]:
        return [runner_to_proto(r, self._supervisor.current_task(r.id)) for r in runners]

    async def ListRunners(
        self, request: runner_service_pb2.ListRunnersRequest, context: Context
    ) -> runner_service_pb2.ListRunnersResponse:
        return runner_service_pb2.ListRunnersResponse(
            runners=self._protos(self._supervisor.runners())
        )

    async def StartRunner(
        self, request: runner_service_pb2.RunnerRequest, context: Context
    ) -> runner_service_pb2.RunnerActionResponse:
        with _runner_reason(request.runner_id):
            runners = await self._supervisor.start(request.runner_id, request.all)
        return runner_service_pb2.RunnerActionResponse(runners=self._protos(runners))

    async def StopRunner(
        self, request: runner_service_pb2.RunnerRequest, context: Context
    ) -> runner_service_pb2.RunnerActionResponse:
        with _runner_reason(request.runner_id):
            runners = await self._supervisor.stop(request.runner_id, request.all, request.drain)
        return runner_service_pb2.RunnerActionResponse(runners=self._protos(runners))

    async def RestartRunner(
        self, request: runner_service_pb2.RunnerRequest, context: Context
    ) -> runner_service_pb2.RunnerActionResponse:
        with _runner_reason(request.runner_id):
            runners = await self._supervisor.restart(request.runner_id, request.all, request.drain)
        return runner_service_pb2.RunnerActionResponse(runners=self._protos(runners))

    async def ScaleRunners(
        self, request: runner_service_pb2.ScaleRunnersRequest, context: Context
    ) -> runner_service_pb2.ListRunnersResponse:
        runners = await self._supervisor.scale(request.count)
        return runner_service_pb2.ListRunnersResponse(runners=self._protos(runners))

    async def TailRunnerLog(
        self, request: runner_service_pb2.TailRunnerLogRequest, context: Context
    ) -> AsyncIterator[runner_service_pb2.LogChunk]:
        with _runner_reason(request.runner_id):
            log = self._supervisor.get(request.runner_id).log
        try:
            if request.follow:
                async for offset, data in log.follow(request.offset):
                    yield runner_service_pb2.LogChunk(offset=offset, data=data)
                return
            offset = request.offset
            while True:
                at, data = log.read(offset)
                if not data:
                    return
                yield runner_service_pb2.LogChunk(offset=at, data=data)
                offset = at + len(data)
        except OffsetGone as exc:
            raise OutOfRange(
                f"{exc}; resume from offset {exc.start}",
                reason="LOG_OFFSET_GONE",
                metadata={
                    "runner_id": request.runner_id,
                    "offset": exc.offset,
                    "first_offset": exc.start,
                    "end_offset": exc.end,
                },
            ) from None
        except ValueError as exc:
            raise OutOfRange(
                f"offset {request.offset}: {exc}",
                reason="LOG_OFFSET_PAST_END",
                metadata={"runner_id": request.runner_id, "offset": request.offset},
            ) from None


def _runner_reason(runner_id: str) -> AbstractContextManager[None]:
    return reason_for(NotFound, "RUNNER_NOT_FOUND", runner_id=runner_id)
