"""`python -m runner` against a fake WorkerService (not the daemon): the whole runner loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import psutil
from grpc import aio

from protos import event_pb2, task_pb2, worker_service_pb2, worker_service_pb2_grpc
from shared.auth import token_from_metadata

WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]
REPO = Path(__file__).resolve().parents[2]
TOKEN = "runner-token-for-tests"
Ctx = aio.ServicerContext[object, object]


class FakeWorkerService(worker_service_pb2_grpc.WorkerServiceServicer):
    """Hands out queued tasks once and records what the runner reports."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[task_pb2.Task] = asyncio.Queue()
        self.registered = asyncio.Event()
        self.events: dict[int, event_pb2.Event] = {}
        self.completed: list[worker_service_pb2.CompleteTaskRequest] = []
        self.stop_claims = False

    async def _auth(self, context: Ctx) -> None:
        if token_from_metadata(context.invocation_metadata()) != TOKEN:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")

    async def Register(  # type: ignore[override]
        self, request: worker_service_pb2.RegisterRequest, context: Ctx
    ) -> worker_service_pb2.RegisterResponse:
        await self._auth(context)
        self.registered.set()
        return worker_service_pb2.RegisterResponse(
            heartbeat_interval_seconds=1, max_wait_seconds=0.5
        )

    async def ClaimTask(  # type: ignore[override]
        self, request: worker_service_pb2.ClaimTaskRequest, context: Ctx
    ) -> worker_service_pb2.ClaimTaskResponse:
        await self._auth(context)
        if self.stop_claims:
            await context.abort(grpc.StatusCode.ABORTED, "stopping")
        try:
            task = await asyncio.wait_for(self.queue.get(), request.wait_seconds)
        except TimeoutError:
            return worker_service_pb2.ClaimTaskResponse()
        return worker_service_pb2.ClaimTaskResponse(task=task, attempt=1, env={"FROM_CLAIM": "1"})

    async def Heartbeat(  # type: ignore[override]
        self, request: worker_service_pb2.HeartbeatRequest, context: Ctx
    ) -> worker_service_pb2.HeartbeatResponse:
        await self._auth(context)
        await asyncio.sleep(request.wait_seconds)
        return worker_service_pb2.HeartbeatResponse()

    async def PublishEvents(  # type: ignore[override]
        self, request: worker_service_pb2.PublishEventsRequest, context: Ctx
    ) -> worker_service_pb2.PublishEventsResponse:
        await self._auth(context)
        for offset, event in enumerate(request.events):
            self.events.setdefault(request.first_index + offset, event)
        return worker_service_pb2.PublishEventsResponse(acked_index=max(self.events))

    async def CompleteTask(  # type: ignore[override]
        self, request: worker_service_pb2.CompleteTaskRequest, context: Ctx
    ) -> worker_service_pb2.CompleteTaskResponse:
        await self._auth(context)
        self.completed.append(request)
        return worker_service_pb2.CompleteTaskResponse()

    async def RequestApproval(  # type: ignore[override]
        self, request: worker_service_pb2.RequestApprovalRequest, context: Ctx
    ) -> worker_service_pb2.RequestApprovalResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in these tests")

    def stdout(self) -> bytes:
        ordered = [self.events[i] for i in sorted(self.events)]
        return b"".join(e.log.data for e in ordered if e.log.stream == event_pb2.LOG_STREAM_STDOUT)


async def start(tmp_path: Path) -> tuple[aio.Server, FakeWorkerService, str]:
    service = FakeWorkerService()
    server = aio.server()
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(service, server)
    address = f"unix://{tmp_path}/w.sock"
    server.add_insecure_port(address)
    await server.start()
    return server, service, address


async def spawn_runner(address: str, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "STIGMER_DAEMON_ADDRESS": address,
        "STIGMER_RUNNER_ID": "runner-0",
        "STIGMER_RUNNER_TOKEN": TOKEN,
        "STIGMER_DAEMON_PID": str(os.getpid()),
    }
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runner",
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def command(workspace: Path, script: str) -> task_pb2.Task:
    spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["sh", "-c", script]))
    return task_pb2.Task(id="t-00000000000a", spec=spec, workspace_path=str(workspace))


async def test_runs_a_task_and_stops_when_aborted(tmp_path: Path, wait_until: WaitUntil) -> None:
    server, service, address = await start(tmp_path)
    runner = await spawn_runner(address, tmp_path / "runner.log")
    try:
        await asyncio.wait_for(service.registered.wait(), 10)
        lines = 20_000
        await service.queue.put(command(tmp_path / "ws", f'seq {lines}; echo "$FROM_CLAIM"'))
        await wait_until(lambda: bool(service.completed))
        done = service.completed[0]
        assert done.state == task_pb2.TASK_STATE_SUCCEEDED
        assert done.result.has_exit_code and done.result.exit_code == 0
        expected = "".join(f"{n}\n" for n in range(1, lines + 1)) + "1\n"
        assert service.stdout() == expected.encode()
        service.stop_claims = True
        assert await asyncio.wait_for(runner.wait(), 10) == 0
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
        await server.stop(None)
    assert TOKEN not in (tmp_path / "runner.log").read_text()


async def test_sigterm_kills_the_task_group_and_exits_without_completing(
    tmp_path: Path, wait_until: WaitUntil
) -> None:
    server, service, address = await start(tmp_path)
    runner = await spawn_runner(address, tmp_path / "runner.log")
    try:
        await asyncio.wait_for(service.registered.wait(), 10)
        await service.queue.put(command(tmp_path, "sleep 60 & echo $! > bg.pid; sleep 60"))
        await wait_until(lambda: (tmp_path / "bg.pid").exists() and bool(service.events))
        leader = service.events[1].started.pid
        background = int((tmp_path / "bg.pid").read_text())
        runner.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(runner.wait(), 10) == 0
        await wait_until(lambda: not _running(leader) and not _running(background))
        assert service.completed == []
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
        await server.stop(None)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
