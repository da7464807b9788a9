"""Load: 10,000 command tasks (`true`) queued at once on 16 runners, watched by 64 streams.

What runs. A fresh daemon with RUNNERS runners. SUBMITTERS concurrent clients send
the TASKS CreateTask calls as fast as the daemon takes them (each with a request_id),
so the queue fills far faster than runners drain it. WATCHERS EventService.Subscribe
streams, each filtered to `finished` events (from_start, so none can miss an early
task), stand for dashboards and IDE panels: that is the fan-out a busy daemon serves,
and each stream must end up with every task's `finished` event exactly once (a
stream closed as too slow, RESOURCE_EXHAUSTED, resumes from its cursor, as the
contract says; resumes are counted). WatchTask on a sample would only load the
daemon with a few streams; 64 Subscribe streams make every event go out 64 times.

Figures (the daemon's own clock, from the events it stored, read from the database
read-only once it has stopped):
- throughput: tasks / (last `finished` - first `queued`);
- submit-to-start latency, p50 and p99: `queued` to `started` of each task. With the
  whole load queued at once this is mostly time spent waiting in the queue (the
  p50 is about half the run): it shows the queue is served in order and nothing
  starves, not the idle claim latency (bench/claim_latency.py has that);
- submit rate (CreateTask calls answered per second, client clock);
- watcher delivery lag, p50 and p99: a `finished` event's time to its arrival at a
  watcher (same host, wall clocks);
- daemon RSS at the end (all tasks done, watchers still attached) and the database
  size (file, WAL and shared memory at the end; the file alone after the stop).

`python -m bench.load [TASKS RUNNERS WATCHERS] [--backlog]`: heavy, so not part of
`make bench`; the reliability report calls `run`. On a 2-core machine the default
size took about two minutes (the daemon, 16 runners and this client share the cores;
submission and the drain go at the same pace, so the queue stays shallow: the
"queue depth, max" line says how deep it got). `--backlog` queues all the tasks on a
daemon with no runner first, then scales to RUNNERS: the drain rate of a full queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench.common import PY, REPO, BenchDaemon, median, percentile, terminate
from protos import (
    daemon_service_pb2,
    daemon_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    runner_service_pb2,
    runner_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

TASKS = 10_000
RUNNERS = 16
WATCHERS = 64
SUBMITTERS = 8
# All tasks must have ended within this; the run fails otherwise.
DEADLINE_SECONDS = 900.0
MIB = 1024 * 1024


class LoadDaemon(BenchDaemon):
    """A BenchDaemon that logs to a file in its home and keeps the home until `remove`."""

    def __init__(self, runners: int) -> None:
        super().__init__(runners, config="[secrets]\nrequired = []\n")
        self.runners = runners
        self.log = self.home / "daemon-load.log"

    def spawn(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [PY, "-m", "daemon"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def terminate(self, timeout: float = 60) -> int | None:
        return terminate(self.process, timeout)

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def database_bytes(self) -> int:
        db = self.paths.database
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        return sum(f.stat().st_size for f in files if f.exists())


class Watcher:
    """One Subscribe stream of `finished` events, resumed when closed as too slow."""

    def __init__(self, channel: grpc.aio.Channel, md: tuple[tuple[str, str]], total: int) -> None:
        self.stub = event_service_pb2_grpc.EventServiceStub(channel)
        self.md = md
        self.total = total
        self.seen: set[str] = set()
        self.duplicates = 0
        self.resumed = 0
        self.lags: list[float] = []
        self.cursor = 0

    async def follow(self) -> None:
        while len(self.seen) < self.total:
            request = event_service_pb2.SubscribeRequest(
                event_types=["finished"],
                after_cursor=self.cursor,
                from_start=self.cursor == 0,
            )
            try:
                async for response in self.stub.Subscribe(request, metadata=self.md):
                    now = time.time()
                    for event in response.events:
                        if event.WhichOneof("payload") != "finished":
                            continue
                        if event.task_id in self.seen:
                            self.duplicates += 1
                        self.seen.add(event.task_id)
                        self.lags.append(now - event.time.ToNanoseconds() / 1e9)
                    self.cursor = response.cursor
                    if len(self.seen) >= self.total:
                        return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                self.resumed += 1


class Timeline:
    """What the stopped daemon's database says happened (the daemon's clock)."""

    def __init__(self, times: dict[str, dict[str, float]]) -> None:
        self.waits = [
            t["started"] - t["queued"] for t in times.values() if "started" in t and "queued" in t
        ]
        self.first_queued = min(t["queued"] for t in times.values() if "queued" in t)
        self.first_claimed = min(t["claimed"] for t in times.values() if "claimed" in t)
        self.last_finished = max(t["finished"] for t in times.values() if "finished" in t)
        # The deepest the queue got: queued and not yet claimed.
        steps = sorted(
            [(t["queued"], 1) for t in times.values() if "queued" in t]
            + [(t["claimed"], -1) for t in times.values() if "claimed" in t]
        )
        depth = self.max_depth = 0
        for _, step in steps:
            depth += step
            self.max_depth = max(self.max_depth, depth)


def _timeline(database: Path) -> Timeline:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT task_id, kind, MIN(time) FROM events"
            " WHERE task_id != '' AND kind IN ('queued', 'claimed', 'started', 'finished')"
            " GROUP BY task_id, kind"
        ).fetchall()
    finally:
        db.close()
    times: dict[str, dict[str, float]] = {}
    for task_id, kind, at in rows:
        times.setdefault(task_id, {})[kind] = float(at)
    return Timeline(times)


async def _ready(daemon: LoadDaemon, runners: int) -> None:
    """Serving, with `runners` RUNNING."""
    deadline = time.monotonic() + 60
    while True:
        assert daemon.process is not None
        if daemon.process.poll() is not None:
            raise RuntimeError(f"daemon exited at start; see {daemon.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{runners} runners not RUNNING within 60 s")
        if daemon.paths.token_file.exists() and daemon.paths.socket.exists():
            async with daemon.channel() as channel:
                stub = daemon_service_pb2_grpc.DaemonServiceStub(channel)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    status = await stub.GetStatus(
                        daemon_service_pb2.GetStatusRequest(), metadata=daemon.metadata()
                    )
                    if status.runners_running == runners:
                        return
        await asyncio.sleep(0.05)


async def _load(
    daemon: LoadDaemon, tasks: int, runners: int, watchers: int, backlog: bool
) -> dict[str, Any]:
    await _ready(daemon, daemon.runners)
    md = daemon.metadata()
    # Watchers on their own connections, apart from the submitters'.
    watch_channels = [daemon.channel() for _ in range(4)]
    submit_channel = daemon.channel()
    try:
        followers = [
            Watcher(watch_channels[i % len(watch_channels)], md, tasks) for i in range(watchers)
        ]
        following = [asyncio.create_task(w.follow()) for w in followers]
        stub = task_service_pb2_grpc.TaskServiceStub(submit_channel)
        spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["true"]))
        run_id = uuid.uuid4().hex[:8]
        numbers = iter(range(tasks))
        ids: list[str] = []

        async def submitter() -> None:
            for i in numbers:
                request = task_service_pb2.CreateTaskRequest(
                    spec=spec, request_id=f"load-{run_id}-{i}"
                )
                ids.append((await stub.CreateTask(request, metadata=md)).id)

        t0 = time.monotonic()
        await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
        submit_seconds = time.monotonic() - t0
        if backlog:
            scale = runner_service_pb2_grpc.RunnerServiceStub(submit_channel).ScaleRunners
            await scale(runner_service_pb2.ScaleRunnersRequest(count=runners), metadata=md)
        done, pending = await asyncio.wait(following, timeout=DEADLINE_SECONDS)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # a watcher's failure is the run's
        wall = time.monotonic() - t0
        assert daemon.process is not None
        rss = psutil.Process(daemon.process.pid).memory_info().rss
        db_bytes = daemon.database_bytes()
        stub_status = daemon_service_pb2_grpc.DaemonServiceStub(submit_channel)
        status = await stub_status.GetStatus(daemon_service_pb2.GetStatusRequest(), metadata=md)
        states = {
            task_pb2.TaskState.Name(c.state).removeprefix("TASK_STATE_"): c.count
            for c in status.task_counts
        }
    finally:
        for channel in [*watch_channels, submit_channel]:
            await channel.close(None)
    lags = [lag for w in followers for lag in w.lags]
    return {
        "tasks": tasks,
        "runners": runners,
        "watchers": watchers,
        "created": len(set(ids)),
        "states": states,
        "submit_seconds": submit_seconds,
        "submit_rate": tasks / submit_seconds,
        "wall_seconds": wall,
        "watchers_complete": sum(len(w.seen) == tasks for w in followers),
        "watcher_duplicates": sum(w.duplicates for w in followers),
        "watcher_resumes": sum(w.resumed for w in followers),
        "watch_lag_p50_ms": median(lags) * 1000 if lags else 0.0,
        "watch_lag_p99_ms": percentile(lags, 99) * 1000 if lags else 0.0,
        "daemon_rss_mib": rss / MIB,
        "database_mib_at_end": db_bytes / MIB,
        "pending": len(pending),
    }


async def _run(tasks: int, runners: int, watchers: int, backlog: bool) -> dict[str, Any]:
    daemon = LoadDaemon(0 if backlog else runners)
    result: dict[str, Any] = {"backlog": backlog}
    try:
        daemon.spawn()
        result |= await _load(daemon, tasks, runners, watchers, backlog)
    finally:
        code = daemon.terminate()
    result["daemon_exit_code"] = code
    result["database_mib_after_stop"] = daemon.database_bytes() / MIB
    timeline = _timeline(daemon.paths.database)
    waits = timeline.waits
    # With a backlog, the clock starts when runners begin to claim: the drain rate.
    begin = timeline.first_claimed if backlog else timeline.first_queued
    result["throughput"] = tasks / (timeline.last_finished - begin)
    result["run_seconds"] = timeline.last_finished - begin
    result["start_latency_p50_ms"] = median(waits) * 1000
    result["start_latency_p99_ms"] = percentile(waits, 99) * 1000
    result["started"] = len(waits)
    result["max_queue_depth"] = timeline.max_depth
    result["ok"] = (
        result["created"] == tasks
        and result["states"].get("SUCCEEDED", 0) == tasks
        and result["watchers_complete"] == watchers
        and result["watcher_duplicates"] == 0
        and len(waits) == tasks
        and code == 0
    )
    result["home"] = str(daemon.home)
    if result["ok"]:
        daemon.remove()
    return result


def run(
    tasks: int = TASKS, runners: int = RUNNERS, watchers: int = WATCHERS, backlog: bool = False
) -> dict[str, Any]:
    """One load run; its figures, and `ok` when every task succeeded and every watcher saw
    every task end exactly once. A failed run keeps its home (`home`) for a look.

    `backlog`: the daemon starts with no runner, every task is queued first, then it is
    scaled to `runners`; throughput is then the drain rate (first claim to last
    finish), and the start latency mostly the time spent holding the backlog."""
    return asyncio.run(_run(tasks, runners, watchers, backlog))


def show(r: dict[str, Any]) -> None:
    how = "all queued, then runners started" if r["backlog"] else "submitted as fast as taken"
    print(
        f"load: {r['tasks']} command tasks (true), {how}; {r['runners']} runners, "
        f"{r['watchers']} Subscribe watchers (finished events)"
    )
    rows = [
        ("throughput", f"{r['throughput']:.1f} tasks/s", f"over {r['run_seconds']:.1f} s"),
        ("submit to start, p50", f"{r['start_latency_p50_ms']:.0f} ms", "queued -> started"),
        ("submit to start, p99", f"{r['start_latency_p99_ms']:.0f} ms", ""),
        ("submit rate", f"{r['submit_rate']:.0f} creates/s", f"{SUBMITTERS} concurrent"),
        ("queue depth, max", f"{r['max_queue_depth']} tasks", "queued, not yet claimed"),
        ("watcher delivery lag, p50", f"{r['watch_lag_p50_ms']:.0f} ms", ""),
        ("watcher delivery lag, p99", f"{r['watch_lag_p99_ms']:.0f} ms", ""),
        ("daemon RSS at the end", f"{r['daemon_rss_mib']:.1f} MiB", ""),
        ("database at the end", f"{r['database_mib_at_end']:.1f} MiB", "db + wal + shm"),
        ("database after stop", f"{r['database_mib_after_stop']:.1f} MiB", ""),
        ("wall clock", f"{r['wall_seconds']:.1f} s", "first create to last watcher done"),
    ]
    for name, value, note in rows:
        print(f"  {name:<28} {value:>18}   {note}")
    states = ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items()))
    print(
        f"  tasks: {r['created']} created, {states}; watchers complete "
        f"{r['watchers_complete']}/{r['watchers']}, duplicates {r['watcher_duplicates']}, "
        f"resumed {r['watcher_resumes']}"
    )
    print(f"  {'ok' if r['ok'] else 'FAIL (kept ' + r['home'] + ')'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    backlog = "--backlog" in args
    sizes = [TASKS, RUNNERS, WATCHERS]
    for index, value in enumerate([int(a) for a in args if a != "--backlog"][:3]):
        sizes[index] = value
    result = run(sizes[0], sizes[1], sizes[2], backlog=backlog)
    show(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
