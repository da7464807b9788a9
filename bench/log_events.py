"""Log events from a runner to a watcher: a command prints numbered lines as fast
as it can; one watcher counts events, checks every line arrived once and in order."""

from __future__ import annotations

import asyncio
import time

from bench.common import median, report, running_daemon
from protos import task_pb2, task_service_pb2, task_service_pb2_grpc

LINES = 200_000
RUNS = 3
# Each line is flushed on its own, so the runner sees small writes as a chatty tool makes them.
PRODUCER = (
    f"import sys\nfor i in range({LINES}):\n    sys.stdout.write(f'{{i}}\\n'); sys.stdout.flush()\n"
)


async def _one(
    stub: task_service_pb2_grpc.TaskServiceAsyncStub, md: tuple[tuple[str, str]]
) -> tuple[float, int, float, float]:
    import sys

    task = await stub.CreateTask(
        task_service_pb2.CreateTaskRequest(
            spec=task_pb2.TaskSpec(
                command=task_pb2.CommandSpec(argv=[sys.executable, "-c", PRODUCER])
            )
        ),
        metadata=md,
    )
    data = bytearray()
    events = 0
    first = last = 0.0
    async for batch in stub.WatchTask(
        task_service_pb2.WatchTaskRequest(task_id=task.id), metadata=md
    ):
        for event in batch.events:
            if event.WhichOneof("payload") == "log":
                if not events:
                    first = time.perf_counter()
                events += 1
                last = time.perf_counter()
                data += event.log.data
    expected = "".join(f"{i}\n" for i in range(LINES)).encode()
    if bytes(data) != expected:
        raise AssertionError("log events lost, duplicated or reordered")
    elapsed = max(last - first, 1e-9)
    return events / elapsed, events, LINES / elapsed, len(data) / elapsed / 1e6


async def _measure() -> list[tuple[float, int, float, float]]:
    async with running_daemon(runners=1) as daemon, daemon.channel() as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        return [await _one(stub, daemon.metadata()) for _ in range(RUNS)]


def main() -> None:
    results = asyncio.run(_measure())
    report(
        "log events runner -> watcher",
        median([r[0] for r in results]),
        "ev/s",
        None,
        ">= 20000 ev/s",
    )
    report("  events per run (200,000 lines, none lost)", median([r[1] for r in results]), "events")
    report("  lines runner -> watcher", median([r[2] for r in results]), "lines/s")
    report("  bytes runner -> watcher", median([r[3] for r in results]), "MB/s")


if __name__ == "__main__":
    main()
