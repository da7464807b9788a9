"""The store and task manager on a real SQLite file, with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from daemon import eventcodec
from daemon.bus import Bus
from daemon.errors import AlreadyExists, FailedPrecondition, NotFound
from daemon.model import CommandSpec, NewEvent, TaskResult, TaskSpec, TaskState
from daemon.store import Store
from daemon.tasks import TaskManager


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def manager(tmp_path: Path) -> TaskManager:
    return TaskManager(Store(tmp_path / "db"), Bus(), tmp_path / "ws", Clock())


def spec(*argv: str, attempts: int = 1) -> TaskSpec:
    return TaskSpec(CommandSpec(argv), max_attempts=attempts)


def log_event(text: str) -> NewEvent:
    from protos import event_pb2

    return NewEvent(
        "log",
        event_pb2.Log(stream=event_pb2.LOG_STREAM_STDOUT, data=text.encode()).SerializeToString(),
        1.0,
    )


def test_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_request_id_makes_create_idempotent(manager: TaskManager) -> None:
    first = manager.create(spec("echo", "a"), "req-1")
    assert manager.create(spec("echo", "a"), "req-1").id == first.id
    with pytest.raises(AlreadyExists):
        manager.create(spec("echo", "b"), "req-1")
    assert manager.create(spec("echo", "a"), "").id != first.id


async def test_claim_is_fifo_and_exclusive(manager: TaskManager) -> None:
    a = manager.create(spec("a"), "")
    b = manager.create(spec("b"), "")
    got_a = await manager.claim("runner-0", 0, lambda: True)
    got_b = await manager.claim("runner-1", 0, lambda: True)
    assert got_a is not None and got_b is not None
    assert (got_a.task.id, got_b.task.id) == (a.id, b.id)
    assert got_a.task.state is TaskState.CLAIMED and got_a.task.attempt == 1
    assert await manager.claim("runner-0", 0, lambda: True) is None


async def test_claim_waits_for_a_new_task(manager: TaskManager) -> None:
    waiting = asyncio.create_task(manager.claim("runner-0", 5, lambda: True))
    await asyncio.sleep(0)
    task = manager.create(spec("x"), "")
    claimed = await asyncio.wait_for(waiting, 5)
    assert claimed is not None and claimed.task.id == task.id


async def test_published_events_are_numbered_and_resends_dropped(manager: TaskManager) -> None:
    task = manager.create(spec("x"), "")
    await manager.claim("runner-0", 0, lambda: True)
    assert manager.publish("runner-0", task.id, 1, 1, [log_event("a"), log_event("b")])[0] == 2
    # The same batch again (a lost answer) and an overlapping one.
    assert manager.publish("runner-0", task.id, 1, 1, [log_event("a"), log_event("b")])[0] == 2
    assert manager.publish("runner-0", task.id, 1, 2, [log_event("b"), log_event("c")])[0] == 3
    manager.complete("runner-0", task.id, 1, TaskState.SUCCEEDED, TaskResult(exit_code=0))
    events = [e async for batch in manager.watch(task.id, 0) for e in batch]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events] == ["queued", "claimed", "log", "log", "log", "finished"]
    logs = [eventcodec.to_proto(e).log.data for e in events if e.kind == "log"]
    assert logs == [b"a", b"b", b"c"]


async def test_only_the_holder_may_publish_or_complete(manager: TaskManager) -> None:
    task = manager.create(spec("x"), "")
    await manager.claim("runner-0", 0, lambda: True)
    with pytest.raises(FailedPrecondition):
        manager.publish("runner-1", task.id, 1, 1, [log_event("a")])
    with pytest.raises(FailedPrecondition):
        manager.complete("runner-0", task.id, 2, TaskState.SUCCEEDED, TaskResult(exit_code=0))
    manager.complete("runner-0", task.id, 1, TaskState.FAILED, TaskResult(exit_code=1))
    # A resent completion is answered with the stored task.
    again = manager.complete("runner-0", task.id, 1, TaskState.FAILED, TaskResult(exit_code=1))
    assert again.state is TaskState.FAILED and again.result == TaskResult(exit_code=1)


async def test_lost_runner_requeues_then_fails(manager: TaskManager) -> None:
    task = manager.create(spec("x", attempts=2), "")
    await manager.claim("runner-0", 0, lambda: True)
    manager.runner_lost("runner-0", "was killed by signal 9 (SIGKILL)")
    assert manager.get(task.id).state is TaskState.QUEUED
    again = await manager.claim("runner-1", 0, lambda: True)
    assert again is not None and again.task.attempt == 2
    manager.runner_lost("runner-1", "exited with code 1")
    final = manager.get(task.id)
    assert final.state is TaskState.FAILED
    assert final.result is not None and "runner runner-1 exited with code 1" in final.result.error
    kinds = [e.kind for b in [x async for x in manager.watch(task.id, 0)] for e in b]
    assert kinds == ["queued", "claimed", "retrying", "queued", "claimed", "finished"]


async def test_recover_settles_tasks_a_crashed_daemon_left(tmp_path: Path) -> None:
    first = TaskManager(Store(tmp_path / "db"), Bus(), tmp_path / "ws", Clock())
    task = first.create(spec("x"), "")
    await first.claim("runner-0", 0, lambda: True)
    # A new manager on the same file is a restarted daemon.
    second = TaskManager(Store(tmp_path / "db"), Bus(), tmp_path / "ws", Clock())
    assert second.recover() == 1
    after = second.get(task.id)
    assert after.state is TaskState.FAILED
    assert after.result is not None and "daemon stopped" in after.result.error


async def test_cancel_queued_is_immediate_and_idempotent(manager: TaskManager) -> None:
    task = manager.create(spec("x"), "")
    assert manager.cancel(task.id, "").state is TaskState.CANCELLED
    assert manager.cancel(task.id, "").state is TaskState.CANCELLED
    with pytest.raises(NotFound):
        manager.cancel("t-nope", "")


async def test_cancel_of_running_task_wakes_the_heartbeat(manager: TaskManager) -> None:
    task = manager.create(spec("x"), "")
    await manager.claim("runner-0", 0, lambda: True)
    beat = asyncio.create_task(manager.heartbeat("runner-0", task.id, 1, 30))
    await asyncio.sleep(0)
    manager.cancel(task.id, "")
    assert await asyncio.wait_for(beat, 5) is True


async def test_watch_follows_live_events(manager: TaskManager) -> None:
    task = manager.create(spec("x"), "")
    await manager.claim("runner-0", 0, lambda: True)
    seen: list[str] = []

    async def watch() -> None:
        async for batch in manager.watch(task.id, 0):
            seen.extend(e.kind for e in batch)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    manager.publish("runner-0", task.id, 1, 1, [log_event("a")])
    manager.complete("runner-0", task.id, 1, TaskState.SUCCEEDED, TaskResult(exit_code=0))
    await asyncio.wait_for(watcher, 5)
    assert seen == ["queued", "claimed", "log", "finished"]


async def test_a_task_waits_for_its_secret_then_gets_it(tmp_path: Path) -> None:
    stored: dict[str, str] = {}

    async def resolve(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        return {n: stored[n] for n in names if n in stored}, [n for n in names if n not in stored]

    clock = Clock()
    manager = TaskManager(Store(tmp_path / "db"), Bus(), tmp_path / "ws", clock, resolve, 60)
    task = manager.create(TaskSpec(CommandSpec(("gh",), secrets=("GH_TOKEN",))), "")
    assert await manager.claim("runner-0", 0, lambda: True) is None
    events = manager._store.events_after(task.id, 0, 100)
    assert [e.kind for e in events] == ["queued", "secret_required"]
    assert eventcodec.to_proto(events[1]).secret_required.name == "GH_TOKEN"
    stored["GH_TOKEN"] = "token-value-123"
    manager.secret_changed("GH_TOKEN")
    claimed = await manager.claim("runner-0", 0, lambda: True)
    assert claimed is not None and claimed.env == {"GH_TOKEN": "token-value-123"}


async def test_a_task_whose_secret_never_comes_fails_naming_it(tmp_path: Path) -> None:
    clock = Clock()
    manager = TaskManager(Store(tmp_path / "db"), Bus(), tmp_path / "ws", clock, _none, 60)
    task = manager.create(TaskSpec(CommandSpec(("gh",), secrets=("GH_TOKEN",))), "")
    assert await manager.claim("runner-0", 0, lambda: True) is None
    clock.now += 59
    assert manager.expire_blocked() == 0
    clock.now += 2
    assert manager.expire_blocked() == 1
    failed = manager.get(task.id)
    assert failed.state is TaskState.FAILED and failed.result is not None
    assert "secret GH_TOKEN is not set" in failed.result.error
    assert "stigmer secrets set GH_TOKEN" in failed.result.error


async def _none(names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    return {}, list(names)
