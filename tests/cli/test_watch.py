"""follow_task against an in-process fake TaskService whose stream breaks once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from cli.client import DaemonClient
from cli.watch import follow_task
from protos import event_pb2, task_pb2, task_service_pb2, task_service_pb2_grpc
from shared.paths import Paths


def event(seq: int) -> event_pb2.Event:
    if seq == 5:
        finished = event_pb2.Finished(state=task_pb2.TASK_STATE_SUCCEEDED)
        return event_pb2.Event(task_id="t-1", seq=seq, finished=finished)
    return event_pb2.Event(task_id="t-1", seq=seq, log=event_pb2.Log(data=b"%d\n" % seq))


class BreakingTasks(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(self) -> None:
        self.requests: list[int] = []

    async def WatchTask(  # type: ignore[override]
        self,
        request: task_service_pb2.WatchTaskRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[task_service_pb2.WatchTaskResponse]:
        self.requests.append(request.after_seq)
        if len(self.requests) == 1:
            yield task_service_pb2.WatchTaskResponse(events=[event(1), event(2), event(3)])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
        # A replay that overlaps what was seen must not be printed twice.
        events = [event(s) for s in range(request.after_seq, 6) if s > 0]
        yield task_service_pb2.WatchTaskResponse(events=events)


async def test_follow_task_resumes_after_last_seq(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "config", tmp_path / "state", tmp_path / "run")
    paths.runtime_dir.mkdir()
    paths.state_dir.mkdir()
    paths.token_file.write_text("secret\n")
    # Only WatchTask is served; the generated base answers UNIMPLEMENTED for the rest.
    servicer = BreakingTasks()  # type: ignore[abstract]
    server = grpc.aio.server()
    task_service_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{paths.socket}")
    await server.start()
    try:
        async with DaemonClient(paths) as client:
            seen = [e.seq async for e in follow_task(client, "t-1")]
    finally:
        await server.stop(None)
    assert seen == [1, 2, 3, 4, 5]
    assert servicer.requests == [0, 3]
