"""Event retention and slow watchers on a real SQLite file, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from daemon import eventcodec, retention
from daemon.api.interceptor import _abort_for, rich_status
from daemon.bus import Bus
from daemon.config import EventPolicy, parse
from daemon.errors import NotFound, OutOfRange, ResourceExhausted
from daemon.model import CommandSpec, NewEvent, TaskSpec, TaskState
from daemon.store import Store
from daemon.tasks import TaskManager
from protos import event_pb2
from shared.redact import Redactor

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db")


@pytest.fixture
def manager(store: Store, clock: Clock, tmp_path: Path) -> TaskManager:
    return TaskManager(store, Bus(), tmp_path / "ws", clock, max_watcher_lag=5)


def log_event(text: str, time: float) -> NewEvent:
    return NewEvent(
        "log",
        event_pb2.Log(stream=event_pb2.LOG_STREAM_STDOUT, data=text.encode()).SerializeToString(),
        time,
    )


def task_with_logs(manager: TaskManager, clock: Clock, logs: int, end: bool = True) -> str:
    task = manager.create(TaskSpec(CommandSpec(("true",))), "")
    for i in range(logs):
        manager.add_event(task.id, 0, log_event(f"line {i}", clock()))
    if end:
        manager.cancel(task.id, "done with it")
    return task.id


def seqs(store: Store, task_id: str) -> list[int]:
    return [e.seq for e in store.events_after(task_id, 0, 10**6)]


def policy(**kw: Any) -> EventPolicy:
    return EventPolicy(**kw)


async def test_age_drops_ended_tasks_but_their_finished_event(
    store: Store, manager: TaskManager, clock: Clock
) -> None:
    old = task_with_logs(manager, clock, 10)  # seq 1 queued, 2..11 logs, 12 finished
    active = task_with_logs(manager, clock, 10, end=False)
    manager.runner_event(eventcodec.queued("runner-ish", clock()))
    clock.now += 31 * DAY
    young = task_with_logs(manager, clock, 3)
    dropped = await retention.compact(store, policy(max_age_days=30), clock())
    assert dropped == 11 + 1  # the old task's 11, the runner event
    assert seqs(store, old) == [12]
    assert store.seq_bounds(old) == (12, 12)
    # Its state and result stay.
    kept = manager.get(old)
    assert kept.state is TaskState.CANCELLED and kept.result is not None
    assert kept.result.error == "done with it"
    # A task that has not ended keeps everything, however old.
    assert seqs(store, active) == list(range(1, 12))
    assert seqs(store, young) == list(range(1, 6))
    assert store.compacted_through() > 0
    # Nothing more is due.
    assert await retention.compact(store, policy(max_age_days=30), clock()) == 0


async def test_count_per_task_keeps_the_newest(
    store: Store, manager: TaskManager, clock: Clock
) -> None:
    task = task_with_logs(manager, clock, 20)  # 22 events
    await retention.compact(store, policy(max_per_task=5), clock(), step=3)
    assert seqs(store, task) == [18, 19, 20, 21, 22]
    assert store.seq_bounds(task) == (18, 22)


async def test_global_count_drops_the_oldest_first(
    store: Store, manager: TaskManager, clock: Clock
) -> None:
    a = task_with_logs(manager, clock, 8)  # 10 events each
    b = task_with_logs(manager, clock, 8)
    c = task_with_logs(manager, clock, 8)
    await retention.compact(store, policy(max_events=12), clock(), step=4)
    assert store.event_count() == 12
    assert seqs(store, a) == [10]
    assert seqs(store, b) == [10]
    assert seqs(store, c) == list(range(1, 11))
    # Fewer droppable than the excess: all droppable go, finished events stay.
    await retention.compact(store, policy(max_events=1), clock())
    assert [seqs(store, t) for t in (a, b, c)] == [[10], [10], [10]]


async def test_watch_of_compacted_task_is_out_of_range_then_resumes(
    store: Store, manager: TaskManager, clock: Clock
) -> None:
    task = task_with_logs(manager, clock, 20)
    await retention.compact(store, policy(max_per_task=5), clock())
    with pytest.raises(OutOfRange) as caught:
        async for _ in manager.watch(task, 3):
            pass
    assert caught.value.reason == "CURSOR_TOO_OLD"
    assert caught.value.metadata == {"task_id": task, "after_seq": "3", "first_seq": "18"}
    assert "GetTask" in str(caught.value)
    got = [e.seq async for batch in manager.watch(task, 17) for e in batch]
    assert got == [18, 19, 20, 21, 22]


async def _first(stream: AsyncIterator[Any]) -> Any:
    return await stream.__anext__()


async def test_subscribe_below_the_kept_cursor_is_out_of_range(
    store: Store, manager: TaskManager, clock: Clock
) -> None:
    old = task_with_logs(manager, clock, 5)
    clock.now += 31 * DAY
    young = task_with_logs(manager, clock, 1)
    await retention.compact(store, policy(max_age_days=30), clock())
    oldest = store.compacted_through()
    with pytest.raises(OutOfRange) as caught:
        await _first(manager.subscribe(1, lambda e: True, 5.0))
    assert caught.value.reason == "CURSOR_TOO_OLD"
    assert caught.value.metadata == {"after_cursor": "1", "oldest_cursor": str(oldest)}
    # From the oldest kept cursor: the old task's finished event, the young task whole.
    events, _ = await _first(manager.subscribe(oldest, lambda e: True, 5.0))
    assert [(e.task_id, e.seq) for e in events] == [(old, 7), (young, 1), (young, 2), (young, 3)]
    # from_start: everything still kept, the old task's finished event first.
    events, _ = await _first(manager.subscribe(0, lambda e: True, 5.0, from_kept=True))
    assert (events[0].task_id, events[0].kind) == (old, "finished")


async def test_slow_watcher_is_closed_and_resumes_without_loss(
    manager: TaskManager, clock: Clock
) -> None:
    task = task_with_logs(manager, clock, 0, end=False)
    stream = manager.watch(task, 0)
    seen = [e.seq for e in await _first(stream)]
    # The watcher does not read while the task produces more than the lag allows.
    for i in range(10):
        manager.add_event(task, 0, log_event(f"x{i}", clock()))
    with pytest.raises(ResourceExhausted) as caught:
        await _first(stream)
    assert caught.value.reason == "WATCHER_TOO_SLOW"
    assert caught.value.metadata["after_seq"] == str(seen[-1])
    manager.cancel(task, "")
    async for batch in manager.watch(task, int(caught.value.metadata["after_seq"])):
        seen += [e.seq for e in batch]
    assert seen == list(range(1, 13))


async def test_watcher_catching_up_from_far_behind_is_not_slow(
    manager: TaskManager, clock: Clock
) -> None:
    task = task_with_logs(manager, clock, 50)
    seen = [e.seq async for batch in manager.watch(task, 0) for e in batch]
    assert seen == list(range(1, 53))


async def test_slow_subscriber_is_closed_with_its_cursor(
    manager: TaskManager, clock: Clock
) -> None:
    task = task_with_logs(manager, clock, 0, end=False)
    stream = manager.subscribe(0, lambda e: True, 5.0)
    _, cursor = await _first(stream)
    for i in range(10):
        manager.add_event(task, 0, log_event(f"x{i}", clock()))
    with pytest.raises(ResourceExhausted) as caught:
        await _first(stream)
    assert caught.value.reason == "WATCHER_TOO_SLOW"
    assert caught.value.metadata["after_cursor"] == str(cursor)


def test_events_config() -> None:
    config = parse(
        "[events]\nmax_age_days = 7\nmax_per_task = 10\nmax_events = 100\n"
        "compact_interval_minutes = 1.5\nmax_watcher_lag = 20\n"
    )
    assert config.events == EventPolicy(7.0, 10, 100, 1.5, 20)
    defaults = parse("").events
    assert (defaults.max_age_days, defaults.max_per_task, defaults.max_events) == (
        30.0,
        100_000,
        1_000_000,
    )
    assert defaults.max_watcher_lag == 50_000


class FakeContext:
    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise RuntimeError("aborted")


def _info(status: grpc.Status) -> tuple[status_pb2.Status, error_details_pb2.ErrorInfo]:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(info)
    return rich, info


async def test_unexpected_error_is_internal_with_a_reason() -> None:
    context = FakeContext()
    with pytest.raises(RuntimeError):
        await _abort_for(context, KeyError("boom"), Redactor())  # type: ignore[arg-type]
    assert context.status is not None and context.status.code == grpc.StatusCode.INTERNAL
    rich, info = _info(context.status)
    assert (info.reason, info.domain) == ("INTERNAL", "stigmer.local")
    assert "boom" not in rich.message


async def test_metadata_and_message_are_redacted() -> None:
    redactor = Redactor()
    redactor.add("hunter2-very-secret")
    context = FakeContext()
    error = NotFound(
        "no task 'hunter2-very-secret'",
        reason="TASK_NOT_FOUND",
        metadata={"task_id": "hunter2-very-secret"},
    )
    with pytest.raises(RuntimeError):
        await _abort_for(context, error, redactor)  # type: ignore[arg-type]
    assert context.status is not None
    rich, info = _info(context.status)
    assert "hunter2" not in rich.message and "hunter2" not in info.metadata["task_id"]
    assert context.status.details == rich.message


def test_rich_status_code_matches() -> None:
    status = rich_status(grpc.StatusCode.OUT_OF_RANGE, "m", "CURSOR_TOO_OLD", {"first_seq": "3"})
    rich, info = _info(status)
    assert rich.code == grpc.StatusCode.OUT_OF_RANGE.value[0]
    assert dict(info.metadata) == {"first_seq": "3"}
