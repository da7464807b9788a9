"""Fan-out: one runner's task prints numbered lines, each flushed on its own (many
small log events), while 64 WatchTask watchers stream it. Figures: events delivered
per second in total (sum over watchers / wall time from the go signal to the last
watcher's `finished`), the p99 latency from an event's stored time (event.time, the
daemon's clock) to a watcher receiving it, and the daemon's CPU seconds (its own
process, user + system) per 1,000 events stored. Every watcher is checked to have
received every event once, in order."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import BenchDaemon, median, percentile, report, running_daemon
from protos import task_pb2, task_service_pb2, task_service_pb2_grpc

WATCHERS = 64
# Watchers share connections four by four, as a few IDE windows with several panels would.
PER_CONNECTION = 4
LINES = 5_000
# A short sleep after each line, so the runner reads (and publishes) most lines on their
# own instead of coalescing them: many small events, as a chatty tool makes them.
PACE = 0.0002
RUNS = 3
# Waits for a `go` file in its working directory, so the watchers are all streaming
# and the interpreter's start-up is behind it when the first line is printed.
PRODUCER = (
    "import os, sys, time\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.002)\n"
    f"for i in range({LINES}):\n"
    "    sys.stdout.write(f'{i}\\n'); sys.stdout.flush()\n"
    f"    time.sleep({PACE})\n"
)


@dataclass
class Watcher:
    received: int = 0
    last_seq: int = 0
    finished_at: float = 0.0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    latencies: list[float] = field(default_factory=list)

    async def run(
        self,
        stub: task_service_pb2_grpc.TaskServiceAsyncStub,
        md: tuple[tuple[str, str]],
        task_id: str,
    ) -> None:
        request = task_service_pb2.WatchTaskRequest(task_id=task_id)
        async for batch in stub.WatchTask(request, metadata=md):
            now = time.time()
            self.connected.set()
            for event in batch.events:
                if event.seq != self.last_seq + 1:
                    raise AssertionError(f"seq {event.seq} after {self.last_seq}")
                self.last_seq = event.seq
                stamp = event.time
                self.latencies.append(now - (stamp.seconds + stamp.nanos / 1e9))
            self.received += len(batch.events)
        self.finished_at = time.perf_counter()


@dataclass
class Run:
    delivered_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_per_1000: float
    client_cpu: float
    events: int
    wall: float


def _daemon_cpu(daemon: BenchDaemon) -> float:
    assert daemon.process is not None
    times = psutil.Process(daemon.process.pid).cpu_times()
    return times.user + times.system


async def _one(daemon: BenchDaemon, stubs: list[task_service_pb2_grpc.TaskServiceAsyncStub]) -> Run:
    md = daemon.metadata()
    with tempfile.TemporaryDirectory(prefix="stigmer-fanout-") as workspace:
        task = await stubs[0].CreateTask(
            task_service_pb2.CreateTaskRequest(
                spec=task_pb2.TaskSpec(
                    command=task_pb2.CommandSpec(argv=[sys.executable, "-c", PRODUCER]),
                    workspace=task_pb2.Workspace(path=workspace),
                )
            ),
            metadata=md,
        )
        watchers = [Watcher() for _ in range(WATCHERS)]
        runs = [
            asyncio.create_task(w.run(stubs[i // PER_CONNECTION], md, task.id))
            for i, w in enumerate(watchers)
        ]
        await asyncio.wait_for(asyncio.gather(*(w.connected.wait() for w in watchers)), 30)
        cpu_before = _daemon_cpu(daemon)
        client_before = time.process_time()
        start = time.perf_counter()
        Path(workspace, "go").touch()
        await asyncio.wait_for(asyncio.gather(*runs), 120)
        cpu = _daemon_cpu(daemon) - cpu_before
        client_cpu = time.process_time() - client_before
    stored = await stubs[0].GetTask(task_service_pb2.GetTaskRequest(task_id=task.id), metadata=md)
    if stored.state != task_pb2.TASK_STATE_SUCCEEDED:
        raise AssertionError(f"the producer ended {task_pb2.TaskState.Name(stored.state)}")
    for w in watchers:
        if w.received != stored.last_seq or w.last_seq != stored.last_seq:
            raise AssertionError(f"a watcher got {w.received} of {stored.last_seq} events")
    wall = max(w.finished_at for w in watchers) - start
    latencies = [lat for w in watchers for lat in w.latencies]
    return Run(
        delivered_per_second=sum(w.received for w in watchers) / wall,
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        cpu_per_1000=cpu / stored.last_seq * 1000,
        client_cpu=client_cpu,
        events=stored.last_seq,
        wall=wall,
    )


async def _measure() -> list[Run]:
    async with running_daemon(runners=1) as daemon:
        channels = [daemon.channel() for _ in range(WATCHERS // PER_CONNECTION)]
        try:
            stubs = [task_service_pb2_grpc.TaskServiceStub(c) for c in channels]
            return [await _one(daemon, stubs) for _ in range(RUNS)]
        finally:
            for channel in channels:
                await channel.close(None)


def main() -> None:
    results = asyncio.run(_measure())
    report(
        f"fan-out: events delivered to {WATCHERS} watchers",
        median([r.delivered_per_second for r in results]),
        "ev/s",
    )
    report("  latency stored -> watcher, p50", median([r.p50_ms for r in results]), "ms")
    report("  latency stored -> watcher, p99", median([r.p99_ms for r in results]), "ms")
    report("  daemon CPU per 1,000 events stored", median([r.cpu_per_1000 for r in results]), "s")
    report(
        f"  events stored per run ({LINES:,} lines)", median([r.events for r in results]), "events"
    )
    report("  wall time per run", median([r.wall for r in results]), "s")
    # The watchers run in this process and share the machine's cores with the daemon.
    report(
        "  watchers' own CPU per run (this process)", median([r.client_cpu for r in results]), "s"
    )


if __name__ == "__main__":
    main()
