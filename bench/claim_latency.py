"""Submit to claimed by an idle runner: the daemon's own timestamps of the queued
and claimed events of each task, so client and network costs are left out."""

from __future__ import annotations

import asyncio

from bench.common import median, percentile, report, running_daemon
from protos import task_pb2, task_service_pb2, task_service_pb2_grpc

TASKS = 200


async def _measure() -> list[float]:
    async with running_daemon(runners=2) as daemon, daemon.channel() as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        md = daemon.metadata()
        latencies = []
        for _ in range(TASKS):
            task = await stub.CreateTask(
                task_service_pb2.CreateTaskRequest(
                    spec=task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["true"]))
                ),
                metadata=md,
            )
            times: dict[str, float] = {}
            async for batch in stub.WatchTask(
                task_service_pb2.WatchTaskRequest(task_id=task.id), metadata=md
            ):
                for event in batch.events:
                    kind = event.WhichOneof("payload")
                    if kind in ("queued", "claimed") and kind not in times:
                        times[kind] = event.time.ToNanoseconds() / 1e6
            latencies.append(times["claimed"] - times["queued"])
        return latencies


def main() -> None:
    samples = asyncio.run(_measure())
    report("submit to claimed by an idle runner, p50", median(samples), "ms", None, "< 5 ms")
    report("submit to claimed by an idle runner, p99", percentile(samples, 99), "ms")


if __name__ == "__main__":
    main()
