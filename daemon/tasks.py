"""The task manager: the life cycle of tasks and their events, on top of the store."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon import bus as busmod
from daemon import eventcodec, policy
from daemon.bus import Bus
from daemon.claims import Plan
from daemon.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from daemon.model import Event, NewEvent, Task, TaskResult, TaskSpec, TaskState
from daemon.store import Store
from shared.skillformat import SkillDoc

log = logging.getLogger(__name__)

WATCH_BATCH = 1000
# A batch stays well under the 4 MiB message limit (log events carry up to 64 KiB).
WATCH_BATCH_BYTES = 1 << 20


def _capped(events: list[Event]) -> list[Event]:
    """The leading events of `events` that fit in one response (at least one)."""
    size = 0
    for i, event in enumerate(events):
        size += len(event.payload) + 64
        if i and size > WATCH_BATCH_BYTES:
            return events[:i]
    return events


def new_task_id() -> str:
    return "t-" + secrets.token_hex(6)


# Looks secrets up by name: (values of those set, names of those that are not).
Resolver = Callable[[Sequence[str]], Awaitable[tuple[dict[str, str], list[str]]]]


async def _no_secrets(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    return {}, list(names)


def simple_plan(task: Task) -> Plan:
    return Plan(task.spec.requires, task.spec.secrets)


@dataclass(frozen=True)
class Claimed:
    task: Task
    env: dict[str, str]  # secret values the task's programs get
    skills: tuple[SkillDoc, ...]


class TaskManager:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        workspaces_dir: Path,
        clock: Callable[[], float],
        resolve_secrets: Resolver = _no_secrets,
        secret_wait_seconds: float = 300.0,
        plan: Callable[[Task], Plan] = simple_plan,
        max_watcher_lag: int = 0,
        on_finished: Callable[[Task], object] = lambda task: None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._workspaces = workspaces_dir
        self._clock = clock
        self._resolve = resolve_secrets
        self._secret_wait = secret_wait_seconds
        self._plan = plan
        # A watcher this many events behind the newest is closed (0: never).
        self._max_lag = max_watcher_lag
        self._on_finished = on_finished

    # -- clients -------------------------------------------------------------

    def create(self, spec: TaskSpec, request_id: str) -> Task:
        if request_id:
            existing = self._store.get_by_request_id(request_id)
            if existing is not None:
                if existing.spec != spec:
                    raise AlreadyExists(
                        f"request_id {request_id!r} was already used for task {existing.id}"
                        " with a different spec; use a new request_id for a new task",
                        reason="REQUEST_ID_REUSED",
                        metadata={"request_id": request_id, "task_id": existing.id},
                    )
                return existing
        task_id = new_task_id()
        workspace = spec.workspace_path or str(self._workspaces / task_id)
        now = self._clock()
        task, events = self._store.insert_task(
            task_id, request_id, spec, workspace, now, eventcodec.queued("created", now)
        )
        self._published(task_id, events)
        self._bus.notify(busmod.QUEUE)
        return task

    def get(self, task_id: str) -> Task:
        task = self._store.get_task(task_id)
        if task is None:
            raise NotFound(
                f"no task with id {task_id!r}; `stigmer task list` shows the tasks",
                reason="TASK_NOT_FOUND",
                metadata={"task_id": task_id},
            )
        return task

    def list_tasks(
        self, states: Sequence[TaskState], limit: int, before_pos: int | None
    ) -> tuple[list[Task], int | None]:
        return self._store.list_tasks(states, limit, before_pos)

    def counts(self) -> dict[TaskState, int]:
        return self._store.count_by_state()

    def cancel(self, task_id: str, reason: str) -> Task:
        task = self.get(task_id)
        if task.state.terminal or task.cancel_requested:
            return task
        if task.state is TaskState.QUEUED:
            self._finish(task, TaskState.CANCELLED, TaskResult(error=reason or "cancelled"))
        else:
            self._store.request_cancel(task_id)
            self._bus.notify(busmod.cancel_key(task_id))
        return self.get(task_id)

    async def watch(self, task_id: str, after_seq: int) -> AsyncIterator[list[Event]]:
        """Stored events after `after_seq`, then live ones, until the finished event.

        Each watcher reads the store at its own pace, so a slow one holds up nobody.
        OUT_OF_RANGE (CURSOR_TOO_OLD) when events after `after_seq` were compacted away;
        RESOURCE_EXHAUSTED (WATCHER_TOO_SLOW) when the watcher falls more than
        max_watcher_lag events further behind than it ever was."""
        self.get(task_id)
        cursor = after_seq
        best: int | None = None
        while True:
            listener = self._bus.listener(busmod.events_key(task_id))
            first, last = self._store.seq_bounds(task_id) or (1, 0)
            if cursor < first - 1:
                raise OutOfRange(
                    f"events of task {task_id} up to seq {first - 1} were dropped by retention"
                    f" ([events] in config.toml): GetTask shows its state and result; watch"
                    f" again with after_seq {first - 1} for the events still kept",
                    reason="CURSOR_TOO_OLD",
                    metadata={"task_id": task_id, "after_seq": cursor, "first_seq": first},
                )
            lag = last - cursor
            best = lag if best is None else min(best, lag)
            if self._max_lag and lag - best > self._max_lag:
                raise ResourceExhausted(
                    f"this watcher fell {lag} events behind task {task_id} (more than [events]"
                    f" max_watcher_lag = {self._max_lag}): watch again with after_seq {cursor}"
                    " to resume without loss",
                    reason="WATCHER_TOO_SLOW",
                    metadata={"task_id": task_id, "after_seq": cursor, "last_seq": last},
                )
            events = _capped(self._store.events_after(task_id, cursor, WATCH_BATCH))
            if events:
                yield events
                cursor = events[-1].seq
                if events[-1].kind == "finished":
                    return
                continue
            task = self.get(task_id)
            if task.state.terminal and cursor >= task.last_seq:
                return
            await listener.wait()

    # -- runners -------------------------------------------------------------

    def task_of(self, runner_id: str) -> str | None:
        """The task the runner holds, if any."""
        return self._store.active_task_id(runner_id)

    def runner_event(self, event: NewEvent) -> None:
        self._store.append_global(event)
        self._bus.notify(busmod.ALL)

    def last_cursor(self) -> int:
        return self._store.last_cursor()

    async def subscribe(
        self,
        after_cursor: int,
        accept: Callable[[Event], bool],
        quiet_seconds: float,
        from_kept: bool = False,
    ) -> AsyncIterator[tuple[list[Event], int]]:
        """Accepted events of everything after `after_cursor`, then live ones, with the
        cursor they reach; an empty batch after a quiet spell.

        OUT_OF_RANGE (CURSOR_TOO_OLD) when events after the cursor were compacted away
        (`from_kept`: what was dropped before the call is fine, the stream starts with
        what is kept); RESOURCE_EXHAUSTED (WATCHER_TOO_SLOW) as for watch()."""
        cursor = after_cursor
        floor = self._store.compacted_through() if from_kept else 0
        best: int | None = None
        last_sent = self._clock()
        while True:
            listener = self._bus.listener(busmod.ALL)
            oldest = self._store.compacted_through()
            if cursor < oldest and oldest > floor:
                raise OutOfRange(
                    f"events up to cursor {oldest} were dropped by retention ([events] in"
                    " config.toml): read the current state (ListTasks, GetTask, ListRunners),"
                    f" then subscribe again with after_cursor {oldest}",
                    reason="CURSOR_TOO_OLD",
                    metadata={"after_cursor": cursor, "oldest_cursor": oldest},
                )
            newest = self._store.last_cursor()
            lag = newest - cursor
            best = lag if best is None else min(best, lag)
            if self._max_lag and lag - best > self._max_lag:
                raise ResourceExhausted(
                    f"this subscriber fell {lag} events behind (more than [events]"
                    f" max_watcher_lag = {self._max_lag}): subscribe again with after_cursor"
                    f" {cursor} to resume without loss",
                    reason="WATCHER_TOO_SLOW",
                    metadata={"after_cursor": cursor, "last_cursor": newest},
                )
            events = _capped(self._store.events_after_cursor(cursor, WATCH_BATCH))
            if events:
                cursor = events[-1].cursor
                accepted = [e for e in events if accept(e)]
                if accepted or self._clock() - last_sent >= quiet_seconds:
                    yield accepted, cursor
                    last_sent = self._clock()
                continue
            if not await busmod.wait(listener, quiet_seconds):
                yield [], cursor
                last_sent = self._clock()

    async def claim(
        self, runner_id: str, wait_seconds: float, wanted: Callable[[], bool]
    ) -> Claimed | None:
        """The oldest queued task, claimed for `runner_id` while `wanted()` holds, with
        what it needs (secret values, skills). A task whose secret is not set waits."""
        deadline = self._clock() + wait_seconds
        while wanted():
            listener = self._bus.listener(busmod.QUEUE)
            candidate = self._store.next_queued()
            if candidate is not None:
                try:
                    plan = self._plan(candidate)
                except Exception as exc:
                    # One task that cannot be prepared must not stall the queue behind it.
                    log.exception("task %s cannot be prepared", candidate.id)
                    error = f"the task could not be prepared: {type(exc).__name__}: {exc}"
                    self._finish(candidate, TaskState.FAILED, TaskResult(error=error))
                    continue
                found: dict[str, str] = {}
                if plan.requires:
                    found, missing = await self._resolve(plan.requires)
                    if missing:
                        self._block(candidate, missing[0], plan.who_needs(missing[0]))
                        continue
                if not wanted():
                    return None
                now = self._clock()
                task = self._store.claim(
                    candidate.id, runner_id, eventcodec.claimed(runner_id, now)
                )
                if task is None:
                    continue  # another runner won it while the secrets were looked up
                if plan.events:
                    self._store.append(task.id, task.attempt, plan.events)
                self._bus.notify(busmod.events_key(task.id))
                self._bus.notify(busmod.ALL)
                # Only what the task's programs need travels with the claim.
                return Claimed(task, {n: found[n] for n in plan.env}, plan.skills)
            remaining = deadline - self._clock()
            if remaining <= 0 or not await busmod.wait(listener, remaining):
                return None
        return None

    def _block(self, task: Task, secret: str, needed_by: str) -> None:
        now = self._clock()
        deadline = now + self._secret_wait
        event = eventcodec.secret_required(secret, needed_by, deadline, now)
        events = self._store.block(task.id, secret, deadline, event)
        log.warning(
            "task %s waits for secret %s (until it is set, or %.0f s)",
            task.id,
            secret,
            self._secret_wait,
        )
        self._published(task.id, events)

    def secret_changed(self, name: str) -> None:
        """Tasks waiting for `name` may be claimable now."""
        if self._store.unblock(name):
            self._bus.notify(busmod.QUEUE)

    def expire_blocked(self) -> int:
        """Fails the tasks that waited for a secret longer than they may."""
        expired = self._store.blocked_past(self._clock())
        for task in expired:
            name = self._store.blocked_secret(task.id)
            self._finish(
                task,
                TaskState.FAILED,
                TaskResult(
                    error=f"secret {name} is not set (waited {self._secret_wait:g} s): set it with"
                    f" `stigmer secrets set {name}` and run the task again"
                ),
            )
        return len(expired)

    def add_event(self, task_id: str, attempt: int, event: NewEvent) -> None:
        self._published(task_id, self._store.append(task_id, attempt, [event]))

    def check_holder(self, task_id: str, runner_id: str, attempt: int) -> None:
        self._owned(task_id, runner_id, attempt)

    def _owned(self, task_id: str, runner_id: str, attempt: int) -> Task:
        task = self.get(task_id)
        if task.runner_id != runner_id or task.attempt != attempt or not task.state.active:
            raise FailedPrecondition(
                f"task {task_id} attempt {attempt} is not held by {runner_id}"
                f" (state {task.state.value}, attempt {task.attempt}, runner {task.runner_id!r})",
                reason="ATTEMPT_NOT_HELD",
                metadata={"task_id": task_id, "attempt": attempt, "state": task.state.value},
            )
        return task

    async def heartbeat(
        self, runner_id: str, task_id: str, attempt: int, wait_seconds: float
    ) -> bool:
        """True when the task's cancel is requested; waits up to `wait_seconds` for one."""
        listener = self._bus.listener(busmod.cancel_key(task_id))
        task = self._owned(task_id, runner_id, attempt)
        if task.cancel_requested:
            return True
        if wait_seconds > 0 and await busmod.wait(listener, wait_seconds):
            return self.get(task_id).cancel_requested
        return False

    def publish(
        self,
        runner_id: str,
        task_id: str,
        attempt: int,
        first_index: int,
        events: Sequence[NewEvent],
    ) -> tuple[int, bool, int]:
        """Stores a runner's events; returns the acked index, whether cancel is requested,
        and how many of `events` (the last ones) were new."""
        if first_index < 1:
            raise InvalidArgument("first_index", first_index, "runner event indices start at 1")
        task = self._owned(task_id, runner_id, attempt)
        acked, stored = self._store.append_published(task_id, attempt, first_index, events)
        if any(e.kind == "started" for e in stored):
            self._store.set_running(task_id, attempt, self._clock())
        self._published(task_id, stored)
        return acked, task.cancel_requested, len(stored)

    def complete(
        self, runner_id: str, task_id: str, attempt: int, state: TaskState, result: TaskResult
    ) -> Task:
        task = self.get(task_id)
        if task.state.terminal and task.attempt == attempt and task.runner_id == runner_id:
            return task  # a resend of a completion that landed
        task = self._owned(task_id, runner_id, attempt)
        if not state.terminal:
            raise InvalidArgument("state", state.value, "a completion needs a terminal state")
        self._finish(task, state, result, runner_id)
        return self.get(task_id)

    def runner_lost(self, runner_id: str, reason: str) -> list[Task]:
        """Ends or requeues every task the runner held; returns them as they were."""
        lost = self._store.active_tasks(runner_id)
        for task in lost:
            self._settle(task, f"runner {runner_id} {reason} while the task was running")
        return lost

    def recover(self) -> int:
        """At start: tasks left active by a daemon that did not stop cleanly."""
        stranded = self._store.active_tasks()
        for task in stranded:
            self._settle(task, "the daemon stopped while the task was running")
        # A secret may have been set while no daemon ran: look again at claim time.
        self._store.unblock()
        return len(stranded)

    # -- internals -----------------------------------------------------------

    def _settle(self, task: Task, reason: str) -> None:
        outcome = policy.after_runner_loss(task)
        if outcome is TaskState.QUEUED:
            now = self._clock()
            events = self._store.requeue(
                task.id,
                task.attempt,
                [eventcodec.retrying(task.attempt, reason, now), eventcodec.queued("retry", now)],
            )
            log.info("task %s requeued: %s", task.id, reason)
            self._published(task.id, events)
            self._bus.notify(busmod.QUEUE)
        else:
            error = "cancelled" if outcome is TaskState.CANCELLED else reason
            self._finish(task, outcome, TaskResult(error=error))

    def _finish(
        self, task: Task, state: TaskState, result: TaskResult, runner_id: str = ""
    ) -> None:
        now = self._clock()
        events = self._store.finish(
            task.id,
            state,
            result,
            now,
            eventcodec.finished(state, result, now, runner_id),
            task.attempt,
        )
        log.info("task %s %s%s", task.id, state.value, f": {result.error}" if result.error else "")
        self._published(task.id, events)
        self._on_finished(self.get(task.id))

    def _published(self, task_id: str, events: list[Event]) -> None:
        if events:
            self._bus.notify(busmod.events_key(task_id))
            self._bus.notify(busmod.ALL)
