"""`stigmer task list` against a running daemon, wall time per call."""

from __future__ import annotations

import asyncio

from bench.common import STIGMER, floor_import, median, report, running_daemon, time_command

RUNS = 9
# What any Python CLI talking gRPC with our protos must import.
FLOOR_IMPORTS = "grpc, protos.task_service_pb2_grpc, protos.daemon_service_pb2_grpc"


async def _measure() -> list[float]:
    async with running_daemon(runners=0) as daemon:
        time_command([STIGMER, "task", "list"], daemon.env)  # warm the page cache
        return [time_command([STIGMER, "task", "list"], daemon.env) * 1000 for _ in range(RUNS)]


def main() -> None:
    floor = floor_import(FLOOR_IMPORTS, RUNS) * 1000
    samples = asyncio.run(_measure())
    report("`stigmer task list` wall", median(samples), "ms", floor, "< 250 ms")


if __name__ == "__main__":
    main()
