"""Approvals: a tool call the policy sent for a human's answer waits here until a
client answers (TaskService.ApproveAction) or the timeout denies it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from daemon import eventcodec
from daemon.audit import AuditTrail
from daemon.errors import FailedPrecondition, NotFound
from daemon.tasks import TaskManager


@dataclass(frozen=True)
class Resolution:
    approval_id: str
    approved: bool
    resolved_by: str
    reason: str = ""
    always: bool = False


@dataclass
class _Pending:
    id: str
    task_id: str
    attempt: int
    call_id: str
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    resolution: Resolution | None = None


class Approvals:
    def __init__(self, tasks: TaskManager, audit: AuditTrail, clock: Callable[[], float]) -> None:
        self._tasks = tasks
        self._audit = audit
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    async def request(
        self,
        runner_id: str,
        task_id: str,
        attempt: int,
        call_id: str,
        tool: str,
        summary: str,
        wait_seconds: float,
    ) -> Resolution:
        """Publishes the request and waits for its answer; no answer in time is a denial."""
        self._tasks.check_holder(task_id, runner_id, attempt)
        pending = _Pending("a-" + secrets.token_hex(6), task_id, attempt, call_id)
        self._pending[pending.id] = pending
        now = self._clock()
        self._tasks.add_event(
            task_id,
            attempt,
            eventcodec.approval_requested(
                pending.id, call_id, tool, summary, now + wait_seconds, now
            ),
        )
        try:
            async with asyncio.timeout(wait_seconds):
                await pending.answered.wait()
        except TimeoutError:
            self._resolve(
                pending,
                Resolution(pending.id, False, "timeout", f"no answer within {wait_seconds:g} s"),
            )
        except asyncio.CancelledError:
            # The runner gave up (the task was cancelled): nobody may answer it now.
            self._resolve(
                pending, Resolution(pending.id, False, "cancelled", "the task was cancelled")
            )
            raise
        finally:
            self._pending.pop(pending.id, None)
        assert pending.resolution is not None
        return pending.resolution

    def answer(
        self,
        task_id: str,
        approval_id: str,
        approve: bool,
        reason: str,
        answered_by: str,
        always: bool,
    ) -> Resolution:
        pending = self._pending.get(approval_id)
        if pending is None or pending.task_id != task_id:
            self._tasks.get(task_id)  # NOT_FOUND for an unknown task first
            raise NotFound(
                f"no open approval {approval_id!r} on task {task_id}: it was answered, timed out"
                " or never asked; `stigmer task watch` shows the requests"
            )
        if pending.resolution is not None:
            raise FailedPrecondition(f"approval {approval_id} was already answered")
        resolution = Resolution(
            approval_id, approve, answered_by or "a client", reason, always and approve
        )
        self._resolve(pending, resolution)
        return resolution

    def _resolve(self, pending: _Pending, resolution: Resolution) -> None:
        pending.resolution = resolution
        pending.answered.set()
        self._audit.approved(
            pending.task_id, pending.call_id, resolution.resolved_by, resolution.approved
        )
        self._tasks.add_event(
            pending.task_id,
            pending.attempt,
            eventcodec.approval_resolved(
                resolution.approval_id,
                resolution.approved,
                resolution.resolved_by,
                resolution.reason,
                resolution.always,
                self._clock(),
            ),
        )
