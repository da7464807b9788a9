"""WorkerService: the runners' side of the protocol."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from daemon import eventcodec
from daemon.api import convert
from daemon.api.interceptor import abort
from daemon.approvals import Approvals
from daemon.audit import AuditTrail
from daemon.config import Config
from daemon.errors import Aborted, InvalidArgument
from daemon.supervision.supervisor import Supervisor
from daemon.tasks import TaskManager
from protos import event_pb2, worker_service_pb2, worker_service_pb2_grpc
from shared import auth
from shared.redact import Redactor

Context = Any
MAX_BATCH = 10_000
MAX_APPROVAL_WAIT = 86400


class WorkerService(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        tasks: TaskManager,
        supervisor: Supervisor,
        config: Config,
        clock: Any,
        redactor: Redactor,
        approvals: Approvals,
        audit: AuditTrail,
    ) -> None:
        self._tasks = tasks
        self._supervisor = supervisor
        self._config = config
        self._clock = clock
        self._redactor = redactor
        self._approvals = approvals
        self._audit = audit

    async def _caller(self, request_runner_id: str, context: Context) -> str:
        """The runner the call's token belongs to; it may act only as itself."""
        token = auth.token_from_metadata(context.invocation_metadata()) or ""
        runner_id = self._supervisor.runner_for_token(token)
        if runner_id is None or runner_id != request_runner_id:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"this token does not belong to runner {request_runner_id!r}",
                "TOKEN_OF_ANOTHER_RUNNER",
                {"runner_id": request_runner_id},
            )
        # Every call is a sign of life; the hang check needs nothing else.
        self._supervisor.seen(request_runner_id)
        return request_runner_id

    async def Register(
        self, request: worker_service_pb2.RegisterRequest, context: Context
    ) -> worker_service_pb2.RegisterResponse:
        runner_id = await self._caller(request.runner_id, context)
        if not self._supervisor.register(runner_id, request.pid):
            raise Aborted(
                f"{runner_id} is not expected to register now (pid {request.pid})",
                reason="RUNNER_NOT_EXPECTED",
                metadata={"runner_id": runner_id},
            )
        return worker_service_pb2.RegisterResponse(
            heartbeat_interval_seconds=min(1.0, self._max_wait), max_wait_seconds=self._max_wait
        )

    @property
    def _max_wait(self) -> float:
        # Long polls end well inside the hang timeout, so an idle runner stays seen.
        return min(self._config.max_wait_seconds, self._config.policy.heartbeat_timeout_seconds / 3)

    def _wait(self, seconds: float) -> float:
        if seconds < 0 or seconds != seconds:
            raise InvalidArgument("wait_seconds", seconds, "use 0 or more seconds")
        return min(seconds, self._max_wait)

    async def ClaimTask(
        self, request: worker_service_pb2.ClaimTaskRequest, context: Context
    ) -> worker_service_pb2.ClaimTaskResponse:
        runner_id = await self._caller(request.runner_id, context)
        wait = self._wait(request.wait_seconds)
        claimed = await self._tasks.claim(
            runner_id, wait, lambda: self._supervisor.may_claim(runner_id)
        )
        self._supervisor.seen(runner_id)
        if claimed is None:
            if not self._supervisor.may_claim(runner_id):
                raise Aborted(
                    f"{runner_id} is stopping: it takes no new task",
                    reason="RUNNER_STOPPING",
                    metadata={"runner_id": runner_id},
                )
            return worker_service_pb2.ClaimTaskResponse()
        return worker_service_pb2.ClaimTaskResponse(
            task=convert.task_to_proto(claimed.task),
            attempt=claimed.task.attempt,
            env=claimed.env,
            skills=[
                worker_service_pb2.SkillRef(
                    name=doc.name,
                    description=doc.description,
                    path=str(doc.folder),
                    allowed_tools=doc.allowed_tools,
                )
                for doc in claimed.skills
            ],
        )

    async def Heartbeat(
        self, request: worker_service_pb2.HeartbeatRequest, context: Context
    ) -> worker_service_pb2.HeartbeatResponse:
        runner_id = await self._caller(request.runner_id, context)
        if not request.task_id:
            return worker_service_pb2.HeartbeatResponse()
        cancel = await self._tasks.heartbeat(
            runner_id, request.task_id, request.attempt, self._wait(request.wait_seconds)
        )
        self._supervisor.seen(runner_id)
        return worker_service_pb2.HeartbeatResponse(cancel_requested=cancel)

    async def PublishEvents(
        self, request: worker_service_pb2.PublishEventsRequest, context: Context
    ) -> worker_service_pb2.PublishEventsResponse:
        runner_id = await self._caller(request.runner_id, context)
        if len(request.events) > MAX_BATCH:
            raise InvalidArgument(
                "events", f"{len(request.events)} events", f"send at most {MAX_BATCH}"
            )
        now = self._clock()
        try:
            events = [
                eventcodec.from_proto(e, now, runner_id, self._redactor) for e in request.events
            ]
        except ValueError as exc:
            raise InvalidArgument("events", "an event", f"{exc}: set one payload") from None
        for event in request.events:
            if event.WhichOneof("payload") == "started" and event.started.pid > 0:
                self._supervisor.note_task_process(runner_id, event.started.pid)
        acked, cancel, fresh = self._tasks.publish(
            runner_id, request.task_id, request.attempt, request.first_index, events
        )
        # Only what was new (a resend is not audited twice), redacted by from_proto above.
        new = request.events[len(request.events) - fresh :] if fresh else []
        self._audit_events(request.task_id, request.attempt, new)
        return worker_service_pb2.PublishEventsResponse(acked_index=acked, cancel_requested=cancel)

    async def CompleteTask(
        self, request: worker_service_pb2.CompleteTaskRequest, context: Context
    ) -> worker_service_pb2.CompleteTaskResponse:
        runner_id = await self._caller(request.runner_id, context)
        state = convert.state_from_proto(request.state, "state")
        result = request.result
        eventcodec.scrub(result, self._redactor)
        task = self._tasks.complete(
            runner_id,
            request.task_id,
            request.attempt,
            state,
            convert.result_from_proto(result),
        )
        self._supervisor.task_done(runner_id)
        return worker_service_pb2.CompleteTaskResponse(task=convert.task_to_proto(task))

    async def RequestApproval(
        self, request: worker_service_pb2.RequestApprovalRequest, context: Context
    ) -> worker_service_pb2.RequestApprovalResponse:
        runner_id = await self._caller(request.runner_id, context)
        if not 0 < request.timeout_seconds <= MAX_APPROVAL_WAIT:
            raise InvalidArgument(
                "timeout_seconds",
                request.timeout_seconds,
                f"use more than 0, at most {MAX_APPROVAL_WAIT}",
            )
        resolution = await self._approvals.request(
            runner_id,
            request.task_id,
            request.attempt,
            request.call_id,
            request.tool,
            self._redactor.text(request.summary),
            request.timeout_seconds,
        )
        return worker_service_pb2.RequestApprovalResponse(
            resolution=event_pb2.ApprovalResolved(
                approval_id=resolution.approval_id,
                approved=resolution.approved,
                resolved_by=resolution.resolved_by,
                reason=resolution.reason,
                always=resolution.always,
            )
        )

    def _audit_events(self, task_id: str, attempt: int, events: Iterable[event_pb2.Event]) -> None:
        """The audit is put together from the calls' own events."""
        for event in events:
            kind = event.WhichOneof("payload")
            if kind == "tool_call":
                call = event.tool_call
                self._audit.call(task_id, attempt, call.call_id, call.tool, call.input_json)
            elif kind == "policy_decision":
                decided = event.policy_decision
                self._audit.decided(
                    task_id,
                    attempt,
                    decided.call_id,
                    convert.decision_name(decided.decision),
                    decided.rule,
                )
            elif kind == "tool_result":
                done = event.tool_result
                code = done.exit_code if done.HasField("exit_code") else None
                self._audit.result(
                    task_id, attempt, done.call_id, done.is_error, code, done.duration_seconds
                )
