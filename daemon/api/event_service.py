"""EventService: one filtered stream of every task, runner and daemon event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from daemon import eventcodec
from daemon.api.task_service import check_position
from daemon.errors import InvalidArgument
from daemon.model import Event
from daemon.tasks import TaskManager
from protos import event_pb2, event_service_pb2, event_service_pb2_grpc

Context = Any
# A stream with nothing to say still sends its cursor this often.
QUIET_SECONDS = 5.0


class EventService(event_service_pb2_grpc.EventServiceServicer):
    def __init__(self, tasks: TaskManager) -> None:
        self._tasks = tasks

    async def Subscribe(
        self, request: event_service_pb2.SubscribeRequest, context: Context
    ) -> AsyncIterator[event_service_pb2.SubscribeResponse]:
        task_ids = set(request.task_ids)
        kinds = set(request.event_types)
        unknown = kinds - eventcodec.KINDS
        if unknown:
            raise InvalidArgument(
                "event_types",
                sorted(unknown)[0],
                f"use payload names such as {', '.join(sorted(eventcodec.KINDS)[:4])}",
            )
        runner_ids = set(request.runner_ids)

        def accept(event: Event) -> bool:
            return (
                (not task_ids or event.task_id in task_ids)
                and (not kinds or event.kind in kinds)
                and (not runner_ids or event.runner_id in runner_ids)
            )

        check_position("after_cursor", request.after_cursor)
        start = request.after_cursor
        from_kept = not start and request.from_start
        if not start and not request.from_start:
            start = self._tasks.last_cursor()
        async for events, cursor in self._tasks.subscribe(
            start, accept, QUIET_SECONDS, from_kept=from_kept
        ):
            if events:
                protos = [eventcodec.to_proto(e) for e in events]
            else:
                protos = [event_pb2.Event(cursor=cursor, bookmark=event_pb2.Bookmark())]
            yield event_service_pb2.SubscribeResponse(events=protos, cursor=cursor)
