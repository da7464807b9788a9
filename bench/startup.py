"""Daemon cold start: from exec to a health check answering SERVING."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import BenchDaemon, floor_import, median, report

RUNS = 7


async def _cold_start() -> float:
    daemon = BenchDaemon(runners=0)
    start = time.perf_counter()
    daemon.spawn()
    try:
        async with daemon.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - start
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.002)
    finally:
        daemon.stop()


def main() -> None:
    floor = floor_import("grpc", RUNS) * 1000
    samples = [asyncio.run(_cold_start()) * 1000 for _ in range(RUNS)]
    report("daemon cold start to SERVING", median(samples), "ms", floor, "< 300 ms")


if __name__ == "__main__":
    main()
