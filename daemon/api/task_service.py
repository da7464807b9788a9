"""TaskService: what clients call to create, inspect, cancel and watch tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from daemon import eventcodec
from daemon.api import convert
from daemon.approvals import Approvals
from daemon.audit import AuditTrail
from daemon.config import Config
from daemon.diskspace import SpaceGuard
from daemon.errors import FailedPrecondition, InvalidArgument, NotFound, reason_for
from daemon.tasks import TaskManager
from protos import event_pb2, task_pb2, task_service_pb2, task_service_pb2_grpc
from shared.redact import Redactor

DEFAULT_PAGE = 50
MAX_PAGE = 1000

Context = Any


class TaskService(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(
        self,
        tasks: TaskManager,
        config: Config,
        redactor: Redactor,
        approvals: Approvals,
        audit: AuditTrail,
        space: SpaceGuard,
    ) -> None:
        self._tasks = tasks
        self._config = config
        self._redactor = redactor
        self._approvals = approvals
        self._audit = audit
        self._space = space

    async def CreateTask(
        self, request: task_service_pb2.CreateTaskRequest, context: Context
    ) -> task_pb2.Task:
        self._space.check()
        request_id = convert.request_id(request.request_id)
        spec = convert.spec_from_proto(request.spec, self._config, self._redactor)
        return convert.task_to_proto(self._tasks.create(spec, request_id))

    async def GetTask(
        self, request: task_service_pb2.GetTaskRequest, context: Context
    ) -> task_pb2.Task:
        return convert.task_to_proto(self._tasks.get(request.task_id))

    async def ListTasks(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> task_service_pb2.ListTasksResponse:
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise InvalidArgument(
                "page_size", size, f"use 1 to {MAX_PAGE} (0 means {DEFAULT_PAGE})"
            )
        before = _page_token(request.page_token)
        states = [convert.state_from_proto(s, f"states[{i}]") for i, s in enumerate(request.states)]
        tasks, more = self._tasks.list_tasks(states, size, before)
        return task_service_pb2.ListTasksResponse(
            tasks=[convert.task_to_proto(t) for t in tasks],
            next_page_token=str(more) if more is not None else "",
        )

    async def CancelTask(
        self, request: task_service_pb2.CancelTaskRequest, context: Context
    ) -> task_pb2.Task:
        return convert.task_to_proto(self._tasks.cancel(request.task_id, request.reason))

    async def WatchTask(
        self, request: task_service_pb2.WatchTaskRequest, context: Context
    ) -> AsyncIterator[task_service_pb2.WatchTaskResponse]:
        check_position("after_seq", request.after_seq)
        async for events in self._tasks.watch(request.task_id, request.after_seq):
            yield task_service_pb2.WatchTaskResponse(
                events=[eventcodec.to_proto(e) for e in events]
            )

    async def ApproveAction(
        self, request: task_service_pb2.ApproveActionRequest, context: Context
    ) -> task_service_pb2.ApproveActionResponse:
        _check_text_field("answered_by", request.answered_by, 200)
        _check_text_field("reason", request.reason, 4000)
        ids = {"task_id": request.task_id, "approval_id": request.approval_id}
        with (
            reason_for(NotFound, "APPROVAL_NOT_FOUND", **ids),
            reason_for(FailedPrecondition, "APPROVAL_ALREADY_ANSWERED", **ids),
        ):
            resolution = self._approvals.answer(
                request.task_id,
                request.approval_id,
                request.approve,
                request.reason,
                request.answered_by,
                request.always,
            )
        return task_service_pb2.ApproveActionResponse(
            resolution=event_pb2.ApprovalResolved(
                approval_id=resolution.approval_id,
                approved=resolution.approved,
                resolved_by=resolution.resolved_by,
                reason=resolution.reason,
                always=resolution.always,
            )
        )

    async def ListAudit(
        self, request: task_service_pb2.ListAuditRequest, context: Context
    ) -> task_service_pb2.ListAuditResponse:
        size = request.page_size or 100
        if size > MAX_PAGE:
            raise InvalidArgument("page_size", size, f"use 1 to {MAX_PAGE} (0 means 100)")
        before = _page_token(request.page_token)
        if request.task_id:
            self._tasks.get(request.task_id)
        records, more = self._audit.records(request.task_id, size, before)
        return task_service_pb2.ListAuditResponse(
            records=[convert.audit_to_proto(r) for r in records],
            next_page_token=str(more) if more is not None else "",
        )


# Positions are uint64 on the wire; the store counts in int64.
MAX_POSITION = 2**63 - 1


def check_position(field: str, value: int) -> None:
    if value > MAX_POSITION:
        raise InvalidArgument(field, value, "pass a seq or cursor from an event you received")


def _page_token(token: str) -> int | None:
    if not token:
        return None
    # ASCII digits only ("²" is a digit to str.isdigit), and within SQLite's integers.
    if not (token.isascii() and token.isdigit() and len(token) <= 18):
        raise InvalidArgument("page_token", token, "pass the next_page_token of a previous page")
    return int(token)


def _check_text_field(field: str, value: str, limit: int) -> None:
    if len(value) > limit or "\x00" in value:
        raise InvalidArgument(field, value, f"use at most {limit} characters, no NUL")
