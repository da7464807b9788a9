"""Retention and slow watchers against a real daemon: compaction by its timer answers
OUT_OF_RANGE for a cursor too old, and a watcher that falls too far behind is closed
with RESOURCE_EXHAUSTED and resumes from its cursor without loss."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from protos import event_service_pb2, event_service_pb2_grpc, task_pb2, task_service_pb2
from tests.support import Client, Daemon, wait_until, write_config

BASE = '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, err
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "stigmer.local"
    return info


async def _watch(client: Client, task_id: str, after_seq: int) -> list[int]:
    seqs: list[int] = []
    async for batch in client.tasks.WatchTask(
        task_service_pb2.WatchTaskRequest(task_id=task_id, after_seq=after_seq),
        metadata=client.md,
    ):
        seqs += [e.seq for e in batch.events]
    return seqs


async def _watch_resuming(client: Client, task_id: str) -> tuple[list[int], int]:
    """What a well-behaved client does: on WATCHER_TOO_SLOW, resume from its cursor."""
    seqs: list[int] = []
    closed = 0
    while True:
        try:
            seqs += await _watch(client, task_id, seqs[-1] if seqs else 0)
            return seqs, closed
        except grpc.aio.AioRpcError as err:
            if error_info(err).reason != "WATCHER_TOO_SLOW":
                raise
            closed += 1


async def test_compaction_makes_old_cursors_out_of_range(daemon: Daemon, home: Path) -> None:
    write_config(
        home,
        BASE + "[events]\nmax_per_task = 3\ncompact_interval_minutes = 0.005\n",
    )
    client = await daemon.start()
    task = await client.create(["sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.05; done"])
    everything = await _watch(client, task.id, 0)
    assert len(everything) > 3

    async def compacted() -> grpc.aio.AioRpcError | None:
        try:
            await _watch(client, task.id, 0)
        except grpc.aio.AioRpcError as err:
            return err
        return None

    # The timer compacts within a second or so.
    err = await wait_until(compacted, 20, "compaction by the timer")
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE
    info = error_info(err)
    assert info.reason == "CURSOR_TOO_OLD"
    first = int(info.metadata["first_seq"])
    last = everything[-1]
    assert first == last - 2
    assert "GetTask" in (err.details() or "")
    # The recovery it describes: the state from GetTask, the rest from first_seq - 1.
    ended = await client.get(task.id)
    assert ended.state == task_pb2.TASK_STATE_SUCCEEDED
    assert await _watch(client, task.id, first - 1) == [first, first + 1, last]

    events = event_service_pb2_grpc.EventServiceStub(client.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in events.Subscribe(
            event_service_pb2.SubscribeRequest(after_cursor=1), metadata=client.md
        ):
            pass
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    info = error_info(caught.value)
    assert info.reason == "CURSOR_TOO_OLD"
    oldest = int(info.metadata["oldest_cursor"])
    stream = events.Subscribe(
        event_service_pb2.SubscribeRequest(after_cursor=oldest, task_ids=[task.id]),
        metadata=client.md,
    )
    first_batch: Any = await stream.read()  # type: ignore[attr-defined]
    assert [e.seq for e in first_batch.events][-1] == last
    stream.cancel()


# Many small log events, as fast as the runner takes them.
CHATTY = (
    "import sys, time\n"
    "for i in range(20000):\n"
    "    sys.stdout.write('x' * 400 + '\\n'); sys.stdout.flush()\n"
    "    if i % 20 == 0: time.sleep(0.001)\n"
)


async def test_slow_watcher_is_closed_and_resumes_without_loss(daemon: Daemon, home: Path) -> None:
    write_config(home, BASE + "[events]\nmax_watcher_lag = 500\n")
    client = await daemon.start()
    # A small, fixed flow-control window, so a watcher that does not read holds the
    # daemon's sends back rather than having them all buffered.
    slow_channel = grpc.aio.insecure_channel(
        f"unix://{daemon.paths.socket}",
        options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)],
    )
    daemon.channels.append(slow_channel)
    slow = Client(slow_channel, client.token)
    task = await client.create([sys.executable, "-c", CHATTY])
    stream = slow.tasks.WatchTask(
        task_service_pb2.WatchTaskRequest(task_id=task.id), metadata=slow.md
    )
    seen: list[int] = [e.seq for e in (await stream.read()).events]  # type: ignore[attr-defined]

    # Meanwhile a watcher that keeps reading gets everything (the runner publishes in
    # batches of up to ~200 of these events, below the lag allowed, so it is rarely if
    # ever closed), and the task is not held up by the one that does not read.
    fast, closed = await _watch_resuming(client, task.id)
    assert fast == list(range(1, fast[-1] + 1))
    assert len(fast) > 600
    assert closed <= 2
    done = await client.get(task.id)
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED

    # Now the slow one reads what was buffered for it, then is told it fell behind.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            batch: Any = await stream.read()  # type: ignore[attr-defined]
            if batch is grpc.aio.EOF:  # type: ignore[attr-defined]
                break
            seen += [e.seq for e in batch.events]
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(caught.value)
    assert info.reason == "WATCHER_TOO_SLOW"
    resume = int(info.metadata["after_seq"])
    assert resume == seen[-1]
    seen += await _watch(slow, task.id, resume)
    # Every event exactly once.
    assert seen == fast
