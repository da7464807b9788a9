"""Runner supervision with real runner processes: restarts, backoff, FATAL, hangs,
stop escalation, drain, scaling, logs and the start-up sweep."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import grpc
import pytest

from protos import (
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    runner_pb2,
    runner_service_pb2,
    task_pb2,
    task_service_pb2,
)
from tests.support import Client, Daemon, gone, output_of, processes_with, wait_until, write_config

R = runner_pb2
FAST = """
[daemon]
tcp_address = ""
[runners]
count = {count}
stop_grace_seconds = 1
heartbeat_timeout_seconds = {hang}
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
max_failures = {max_failures}
"""


async def started(
    daemon: Daemon, count: int = 1, hang: float = 2.0, max_failures: int = 5, extra: str = ""
) -> Client:
    text = FAST.format(count=count, hang=hang, max_failures=max_failures) + extra
    write_config(daemon.home, text)
    return await daemon.start()


async def runners(client: Client) -> list[runner_pb2.Runner]:
    answer = await client.runners.ListRunners(
        runner_service_pb2.ListRunnersRequest(), metadata=client.md
    )
    return list(answer.runners)


async def runner(client: Client, runner_id: str = "runner-0") -> runner_pb2.Runner:
    return next(r for r in await runners(client) if r.id == runner_id)


def running_with_new_pid(
    client: Client, old_pid: int, runner_id: str = "runner-0"
) -> Callable[[], Awaitable[runner_pb2.Runner | None]]:
    async def check() -> runner_pb2.Runner | None:
        r = await runner(client, runner_id)
        return r if r.state == R.RUNNER_STATE_RUNNING and r.pid not in (0, old_pid) else None

    return check


def sleeper_marker() -> str:
    return f"{uuid.uuid4().int % 10**6 + 7000}.5"


async def finished(client: Client, task_id: str) -> event_pb2.Finished:
    events = await client.events(task_id)
    assert events[-1].WhichOneof("payload") == "finished"
    return events[-1].finished


@pytest.fixture
async def transitions(daemon: Daemon) -> AsyncIterator[list[event_pb2.RunnerStateChanged]]:
    """Runner state changes as a client subscribed to them sees them (filled once the
    daemon is up)."""
    seen: list[event_pb2.RunnerStateChanged] = []
    task: asyncio.Task[None] | None = None

    async def follow() -> None:
        await wait_until(daemon.paths.socket.exists, 20, "the socket")
        client = await daemon.connect()
        stub = event_service_pb2_grpc.EventServiceStub(client.channel)
        request = event_service_pb2.SubscribeRequest(
            event_types=["runner_state_changed"], from_start=True
        )
        while True:
            try:
                async for batch in stub.Subscribe(request, metadata=client.md):
                    seen.extend(
                        e.runner_state_changed
                        for e in batch.events
                        if e.HasField("runner_state_changed")
                    )
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(follow())
    try:
        yield seen
    finally:
        task.cancel()


def moves(seen: list[event_pb2.RunnerStateChanged], runner_id: str = "runner-0") -> list[str]:
    return [
        R.RunnerState.Name(e.to_state).removeprefix("RUNNER_STATE_")
        for e in seen
        if e.runner_id == runner_id
    ]


async def test_killed_runner_is_restarted_at_once_and_every_move_is_an_event(
    daemon: Daemon, transitions: list[event_pb2.RunnerStateChanged]
) -> None:
    client = await started(daemon)
    first = await runner(client)
    await wait_until(lambda: "RUNNING" in moves(transitions), what="the subscription to catch up")
    os.kill(first.pid, signal.SIGKILL)
    again = await wait_until(running_with_new_pid(client, first.pid), what="a restart")
    assert again.restarts == 1
    await wait_until(lambda: moves(transitions)[-3:] == ["EXITED", "STARTING", "RUNNING"])
    exited = next(e for e in transitions if e.to_state == R.RUNNER_STATE_EXITED)
    assert exited.exit_code == -9 and "SIGKILL" in exited.reason and exited.pid == first.pid


async def test_crash_loop_ends_fatal_until_an_explicit_start(daemon: Daemon) -> None:
    client = await started(daemon)
    for _ in range(20):
        current = await runner(client)
        if current.state == R.RUNNER_STATE_FATAL:
            break
        if current.state == R.RUNNER_STATE_RUNNING:
            os.kill(current.pid, signal.SIGKILL)
            await wait_until(
                partial(_not_running_pid, client, current.pid), what="the crash to be seen"
            )
        else:
            await wait_until(lambda: _settled(client), what="a restart or FATAL")
    fatal = await runner(client)
    assert fatal.state == R.RUNNER_STATE_FATAL
    assert "6 failures" in fatal.reason and "stigmer runner start" in fatal.reason
    assert fatal.pid == 0
    # It stays there: no task is claimed, nothing restarts it.
    status = await client.status()
    assert status.runners_running == 0
    answer = await client.runners.StartRunner(
        runner_service_pb2.RunnerRequest(runner_id="runner-0"), metadata=client.md
    )
    assert answer.runners[0].id == "runner-0"
    await wait_until(running_with_new_pid(client, 0), what="RUNNING after the explicit start")
    task = await client.create(["echo", "back"])
    assert (await finished(client, task.id)).state == task_pb2.TASK_STATE_SUCCEEDED


async def _not_running_pid(client: Client, pid: int) -> bool:
    r = await runner(client)
    return r.pid != pid


async def _settled(client: Client) -> bool:
    state = (await runner(client)).state
    return state in (R.RUNNER_STATE_RUNNING, R.RUNNER_STATE_FATAL)


async def test_hung_runner_is_killed_and_restarted_and_its_task_fails(daemon: Daemon) -> None:
    client = await started(daemon, hang=1.0)
    marker = sleeper_marker()
    task = await client.create(["sleep", marker])
    await wait_until(lambda: processes_with("sleep", marker), what="the task to run")
    hung = await runner(client)
    os.kill(hung.pid, signal.SIGSTOP)  # alive, but no more heartbeats
    end = await finished(client, task.id)
    assert end.state == task_pb2.TASK_STATE_FAILED
    assert "hung" in end.result.error
    back = await wait_until(running_with_new_pid(client, hung.pid), what="a restart")
    assert back.restarts == 1
    await wait_until(lambda: gone(hung.pid), what="the hung runner to be killed")
    await wait_until(lambda: not processes_with("sleep", marker), what="its task's program to end")


async def test_stop_escalates_to_sigkill_for_a_runner_that_ignores_sigterm(daemon: Daemon) -> None:
    client = await started(daemon, hang=60)
    stubborn = await runner(client)
    # A stopped process cannot act on SIGTERM; only SIGKILL ends it.
    os.kill(stubborn.pid, signal.SIGSTOP)
    answer = await client.runners.StopRunner(
        runner_service_pb2.RunnerRequest(runner_id="runner-0"), metadata=client.md
    )
    assert answer.runners[0].state == R.RUNNER_STATE_STOPPED
    assert gone(stubborn.pid)
    log = (daemon.home / "daemon-test.log").read_text()
    assert "ignored SIGTERM for 1 s; killing it" in log
    # Stopped stays stopped.
    assert (await runner(client)).state == R.RUNNER_STATE_STOPPED
    assert (await client.status()).runners_running == 0


async def test_drain_lets_the_task_finish_before_the_restart(
    daemon: Daemon, tmp_path: Path
) -> None:
    client = await started(daemon)
    gate = tmp_path / "gate"
    task = await client.create(
        ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done; echo done"]
    )
    await wait_until(lambda: _task_running(client, task.id), what="the task to run")
    before = await runner(client)
    answer = await client.runners.RestartRunner(
        runner_service_pb2.RunnerRequest(runner_id="runner-0", drain=True), metadata=client.md
    )
    assert answer.runners[0].state == R.RUNNER_STATE_STOPPING
    assert "draining" in answer.runners[0].reason
    # While draining it takes no new work.
    other = await client.create(["echo", "next"])
    gate.touch()
    assert (await finished(client, task.id)).state == task_pb2.TASK_STATE_SUCCEEDED
    after = await wait_until(running_with_new_pid(client, before.pid), what="the restart")
    assert after.pid != before.pid
    events = await client.events(other.id)
    assert events[-1].finished.state == task_pb2.TASK_STATE_SUCCEEDED
    assert all(e.attempt <= 1 for e in events)


async def test_immediate_restart_of_a_busy_runner_retries_its_task(daemon: Daemon) -> None:
    client = await started(daemon)
    flag = daemon.home / "first-attempt"
    script = f"if [ -e {flag} ]; then echo second; else touch {flag}; sleep 60; fi"
    task = await client.create(["sh", "-c", script], retry=task_pb2.RetryPolicy(max_attempts=2))
    await wait_until(flag.exists, what="the first attempt")
    await client.runners.RestartRunner(
        runner_service_pb2.RunnerRequest(runner_id="runner-0"), metadata=client.md
    )
    events = await client.events(task.id)
    assert events[-1].finished.state == task_pb2.TASK_STATE_SUCCEEDED
    assert events[-1].attempt == 2
    retry = next(e.retrying for e in events if e.HasField("retrying"))
    assert "was stopped" in retry.reason
    assert output_of(events) == b"second\n"


async def test_scale_up_then_down_keeps_the_busy_runner(daemon: Daemon) -> None:
    client = await started(daemon, count=2)
    grown = await client.runners.ScaleRunners(
        runner_service_pb2.ScaleRunnersRequest(count=4), metadata=client.md
    )
    assert [r.id for r in grown.runners] == [f"runner-{i}" for i in range(4)]
    await wait_until(lambda: _count_running(client, 4), what="four runners")
    marker = sleeper_marker()
    task = await client.create(["sleep", marker])
    busy = (await wait_until(lambda: _task_running(client, task.id), what="the task")).runner_id
    shrunk = await client.runners.ScaleRunners(
        runner_service_pb2.ScaleRunnersRequest(count=1), metadata=client.md
    )
    assert [r.id for r in shrunk.runners] == [busy]
    assert (await client.status()).runners_total == 1
    await client.tasks.CancelTask(
        task_service_pb2.CancelTaskRequest(task_id=task.id), metadata=client.md
    )
    assert (await finished(client, task.id)).state == task_pb2.TASK_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.runners.ScaleRunners(
            runner_service_pb2.ScaleRunnersRequest(count=65), metadata=client.md
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_runner_log_rotates_and_tail_follows(daemon: Daemon) -> None:
    extra = "log_max_bytes = 4096\nlog_backups = 1\n"
    client = await started(daemon, extra=extra)
    for i in range(40):
        await finished(client, (await client.create(["echo", str(i)])).id)
    logs = daemon.paths.log_dir
    await wait_until(lambda: (logs / "runner-0.log.1").exists(), what="a rotation")
    assert not (logs / "runner-0.log.2").exists()

    async def whole_log() -> str:
        chunks = client.runners.TailRunnerLog(
            runner_service_pb2.TailRunnerLogRequest(runner_id="runner-0", offset=0),
            metadata=client.md,
        )
        return b"".join([c.data async for c in chunks]).decode()

    # The runner logs a task's end just after the daemon has stored it.
    text = await wait_until(
        lambda: _all_logged(whole_log, 40), what="every task's line in the runner log"
    )
    assert "registered" in text
    # Follow from the end, then make the runner say something new.
    follow = client.runners.TailRunnerLog(
        runner_service_pb2.TailRunnerLogRequest(runner_id="runner-0", offset=-1, follow=True),
        metadata=client.md,
    )
    marker = await client.create(["echo", "after-follow"])
    got = b""
    async for chunk in follow:
        got += chunk.data
        if marker.id.encode() in got and b"SUCCEEDED" in got.split(marker.id.encode())[-1]:
            break
    follow.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.runners.StopRunner(
            runner_service_pb2.RunnerRequest(runner_id="runner-9"), metadata=client.md
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_start_up_sweep_ends_what_a_crashed_daemon_left(daemon: Daemon) -> None:
    client = await started(daemon, hang=60)
    marker = sleeper_marker()
    task = await client.create(["sleep", marker])
    await wait_until(lambda: _task_running(client, task.id), what="the task to run")
    frozen = await runner(client)
    # Frozen, the runner can neither notice its parent die nor end its task.
    os.kill(frozen.pid, signal.SIGSTOP)
    daemon.kill()
    assert not gone(frozen.pid) and processes_with("sleep", marker)
    for channel in daemon.channels:
        await channel.close(None)
    await started(daemon, hang=60)
    await wait_until(lambda: gone(frozen.pid), what="the sweep to end the old runner")
    await wait_until(lambda: not processes_with("sleep", marker), what="and its task")


async def test_soak_runner_kills_lose_no_task(daemon: Daemon) -> None:
    client = await started(daemon, count=4, max_failures=1000)
    marker = "0.0517"
    ids = [
        (
            await client.create(
                ["sh", "-c", f"echo {i}; sleep {marker}"],
                retry=task_pb2.RetryPolicy(max_attempts=3),
            )
        ).id
        for i in range(200)
    ]
    rng = random.Random(1)
    kills = 0
    while kills < 50:
        live = [r for r in await runners(client) if r.state == R.RUNNER_STATE_RUNNING and r.pid]
        if live:
            os.kill(rng.choice(live).pid, signal.SIGKILL)
            kills += 1
        await asyncio.sleep(0.05)  # pacing the chaos, not waiting for a result
    finals = []
    for task_id in ids:
        events = await client.events(task_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        ends = [e for e in events if e.HasField("finished")]
        assert len(ends) == 1 and ends[0] is events[-1]
        finals.append(ends[0].finished.state)
    assert len(finals) == 200
    assert all(s in (task_pb2.TASK_STATE_SUCCEEDED, task_pb2.TASK_STATE_FAILED) for s in finals)
    await wait_until(lambda: not processes_with("sleep", marker), what="no task process left")


async def _all_logged(read: Callable[[], Awaitable[str]], count: int) -> str | None:
    text = await read()
    return text if text.count("SUCCEEDED") == count else None


async def _task_running(client: Client, task_id: str) -> task_pb2.Task | None:
    task = await client.get(task_id)
    return task if task.state == task_pb2.TASK_STATE_RUNNING else None


async def _count_running(client: Client, count: int) -> bool:
    return sum(r.state == R.RUNNER_STATE_RUNNING for r in await runners(client)) == count


async def test_a_runner_that_never_registers_in_time_backs_off_to_fatal(daemon: Daemon) -> None:
    # No runner can register within a millisecond: every start fails the same way.
    write_config(
        daemon.home,
        FAST.format(count=1, hang=2.0, max_failures=2) + "start_timeout_seconds = 0.001\n",
    )
    daemon.spawn()
    client = await daemon.connect()
    fatal = await wait_until(
        lambda: _in_state(client, R.RUNNER_STATE_FATAL), 30, "the failed starts to end FATAL"
    )
    assert "did not register within 0.001 s" in fatal.reason
    assert "3 failures" in fatal.reason


async def _in_state(client: Client, state: int) -> runner_pb2.Runner | None:
    try:
        found = await runner(client)
    except grpc.aio.AioRpcError:
        return None
    return found if found.state == state else None
