"""WorkerService calls as the runner makes them: authenticated, bounded, errors classified."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple, Protocol, TypeVar

import grpc
from grpc import aio

from protos import event_pb2, task_pb2, worker_service_pb2, worker_service_pb2_grpc
from runner import __version__
from runner.errors import AttemptLost, RunnerStopping, Transient
from shared.auth import bearer

_Request = TypeVar("_Request")
_Reply = TypeVar("_Reply")

# A long-poll is held by the daemon for its wait; this is how much longer the
# runner waits for the answer before it calls the daemon unresponsive.
_POLL_SLACK = 10.0
_CALL_TIMEOUT = 30.0
_REGISTER_TIMEOUT = 3.0

# gRPC's own reconnect backoff (1 s and up by default) would make quick retries
# pointless: a failed channel answers UNAVAILABLE until its next attempt.
CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

# RESOURCE_EXHAUSTED: the daemon cannot store now (a full disk); it will again.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_TASK_GONE = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND})


class Ack(NamedTuple):
    """What the daemon says after storing a batch of events."""

    acked_index: int
    cancel_requested: bool


class TaskCalls(Protocol):
    """The calls a running task needs (a fake stands in for them in tests)."""

    async def heartbeat(
        self, task_id: str, attempt: int, wait: float
    ) -> worker_service_pb2.HeartbeatResponse: ...

    async def publish(
        self, task_id: str, attempt: int, first_index: int, events: Sequence[event_pb2.Event]
    ) -> Ack: ...


class AgentCalls(TaskCalls, Protocol):
    """What an agent task needs beyond a command's: asking clients to approve a tool call."""

    async def request_approval(
        self,
        task_id: str,
        attempt: int,
        *,
        call_id: str,
        tool: str,
        summary: str,
        timeout_seconds: float,
        input_json: str,
        rule: str,
    ) -> event_pb2.ApprovalResolved: ...


class WorkerClient:
    """One runner's view of WorkerService.

    Raises Transient (UNAVAILABLE, DEADLINE_EXCEEDED), AttemptLost (the task is
    no longer ours), RunnerStopping (ClaimTask's ABORTED); any other status
    propagates as grpc.aio.AioRpcError.
    """

    def __init__(self, channel: aio.Channel, runner_id: str, token: str) -> None:
        self._stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        self._runner_id = runner_id
        self._metadata = bearer(token)

    async def register(self) -> worker_service_pb2.RegisterResponse:
        request = worker_service_pb2.RegisterRequest(
            runner_id=self._runner_id, pid=os.getpid(), version=__version__
        )
        return await self._call(self._stub.Register, request, _REGISTER_TIMEOUT)

    async def claim(self, wait: float) -> worker_service_pb2.ClaimTaskResponse:
        request = worker_service_pb2.ClaimTaskRequest(runner_id=self._runner_id, wait_seconds=wait)
        try:
            return await self._call(self._stub.ClaimTask, request, wait + _POLL_SLACK)
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ABORTED:
                raise RunnerStopping(exc.details() or "") from None
            raise

    async def heartbeat(
        self, task_id: str, attempt: int, wait: float
    ) -> worker_service_pb2.HeartbeatResponse:
        request = worker_service_pb2.HeartbeatRequest(
            runner_id=self._runner_id, task_id=task_id, attempt=attempt, wait_seconds=wait
        )
        return await self._task_call(self._stub.Heartbeat, request, wait + _POLL_SLACK)

    async def publish(
        self, task_id: str, attempt: int, first_index: int, events: Sequence[event_pb2.Event]
    ) -> Ack:
        request = worker_service_pb2.PublishEventsRequest(
            runner_id=self._runner_id,
            task_id=task_id,
            attempt=attempt,
            events=events,
            first_index=first_index,
        )
        reply = await self._task_call(self._stub.PublishEvents, request, _CALL_TIMEOUT)
        return Ack(reply.acked_index, reply.cancel_requested)

    async def complete(
        self,
        task_id: str,
        attempt: int,
        state: task_pb2.TaskState.ValueType,
        result: task_pb2.TaskResult,
    ) -> None:
        request = worker_service_pb2.CompleteTaskRequest(
            runner_id=self._runner_id, task_id=task_id, attempt=attempt, state=state, result=result
        )
        await self._task_call(self._stub.CompleteTask, request, _CALL_TIMEOUT)

    async def request_approval(
        self,
        task_id: str,
        attempt: int,
        *,
        call_id: str,
        tool: str,
        summary: str,
        timeout_seconds: float,
        input_json: str,
        rule: str,
    ) -> event_pb2.ApprovalResolved:
        """Waits for a client's answer; the daemon holds the call up to `timeout_seconds`."""
        request = worker_service_pb2.RequestApprovalRequest(
            runner_id=self._runner_id,
            task_id=task_id,
            attempt=attempt,
            call_id=call_id,
            tool=tool,
            summary=summary,
            timeout_seconds=timeout_seconds,
            input_json=input_json,
            rule=rule,
        )
        reply = await self._task_call(
            self._stub.RequestApproval, request, timeout_seconds + _POLL_SLACK
        )
        return reply.resolution

    async def _task_call(
        self,
        method: aio.UnaryUnaryMultiCallable[_Request, _Reply],
        request: _Request,
        deadline: float,
    ) -> _Reply:
        try:
            return await self._call(method, request, deadline)
        except aio.AioRpcError as exc:
            if exc.code() in _TASK_GONE:
                raise AttemptLost(exc.details() or exc.code().name) from None
            raise

    async def _call(
        self,
        method: aio.UnaryUnaryMultiCallable[_Request, _Reply],
        request: _Request,
        deadline: float,
    ) -> _Reply:
        try:
            return await method(request, timeout=deadline, metadata=self._metadata)
        except aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise Transient(f"{exc.code().name}: {exc.details()}") from None
            raise


def describe(exc: aio.AioRpcError) -> str:
    """A one-line account of a failed call (status and details, never metadata)."""
    return f"{exc.code().name}: {exc.details()}"
