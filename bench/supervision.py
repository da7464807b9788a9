"""Supervision: how fast a killed runner is noticed and back, how fast 32 runners come
up, what idle processes weigh, and what a real supervisord does with the same crash.

Our figures are the daemon's own event times (its wall clock, stored when the state
changed) against time.time() taken just before the kill or the spawn, on the same host.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import psutil

from bench.common import PY, BenchDaemon, floor_import, median, percentile, report, running_daemon
from protos import (
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    runner_pb2,
    runner_service_pb2,
    runner_service_pb2_grpc,
)

KILLS = 20
# Every kill must be a "first" crash (restarted at once), so each runner stays RUNNING
# longer than stable_seconds before it is killed; 20 kills must never reach FATAL.
STABLE_SECONDS = 0.5
CRASH_CONFIG = (
    f"stable_seconds = {STABLE_SECONDS}\n"
    "max_failures = 1000\n"
    "backoff_initial_seconds = 0.05\n"
    "backoff_max_seconds = 0.2\n"
)
MANY = 32
MANY_RUNS = 3
SETTLE_SECONDS = 1.5
SUPERVISORD_KILLS = 5
WAIT_SECONDS = 15.0
MIB = 1024 * 1024

RUNNING = runner_pb2.RUNNER_STATE_RUNNING
EXITED = runner_pb2.RUNNER_STATE_EXITED
BACKOFF = runner_pb2.RUNNER_STATE_BACKOFF


def _seconds(event: event_pb2.Event) -> float:
    return event.time.ToNanoseconds() / 1e9


class RunnerEvents:
    """Every runner_state_changed event of one daemon, from its start, as they come."""

    def __init__(self) -> None:
        self.events: list[event_pb2.Event] = []
        self._changed = asyncio.Event()

    async def follow(self, channel: grpc.aio.Channel, md: tuple[tuple[str, str]]) -> None:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        request = event_service_pb2.SubscribeRequest(
            event_types=["runner_state_changed"], from_start=True
        )
        async for response in stub.Subscribe(request, metadata=md):
            for event in response.events:
                if event.WhichOneof("payload") == "runner_state_changed":
                    self.events.append(event)
                    self._changed.set()

    async def wait_for(
        self, accept: Callable[[event_pb2.Event], bool], start: int = 0, what: str = ""
    ) -> tuple[int, event_pb2.Event]:
        """The first accepted event at or after index `start`, and its index."""
        deadline = time.monotonic() + WAIT_SECONDS
        index = start
        while True:
            self._changed.clear()
            while index < len(self.events):
                if accept(self.events[index]):
                    return index, self.events[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no event within {WAIT_SECONDS:g} s: {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@contextlib.asynccontextmanager
async def _following(daemon: BenchDaemon, channel: grpc.aio.Channel) -> AsyncIterator[RunnerEvents]:
    events = RunnerEvents()
    follower = asyncio.create_task(events.follow(channel, daemon.metadata()))
    try:
        yield events
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await follower


# -- 1, 2 and 4: crashes and idle memory on one daemon with 2 runners ----------


class Crashes:
    def __init__(self) -> None:
        self.noticed: list[float] = []  # seconds, kill to EXITED
        self.back: list[float] = []  # seconds, kill to RUNNING of the new process
        self.backed_off = 0  # kills that went through BACKOFF (should be none)
        self.daemon_rss = 0.0
        self.runner_rss: list[float] = []


def _rss(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss)


async def _idle_rss(daemon: BenchDaemon, channel: grpc.aio.Channel, result: Crashes) -> None:
    assert daemon.process is not None
    await asyncio.sleep(SETTLE_SECONDS)
    stub = runner_service_pb2_grpc.RunnerServiceStub(channel)
    listed = await stub.ListRunners(
        runner_service_pb2.ListRunnersRequest(), metadata=daemon.metadata()
    )
    pids = [r.pid for r in listed.runners if r.state == RUNNING]
    daemon_samples: list[float] = []
    runner_samples: dict[int, list[float]] = {pid: [] for pid in pids}
    for _ in range(5):
        daemon_samples.append(_rss(daemon.process.pid))
        for pid in pids:
            runner_samples[pid].append(_rss(pid))
        await asyncio.sleep(0.1)
    result.daemon_rss = median(daemon_samples)
    result.runner_rss = [median(samples) for samples in runner_samples.values()]


async def _crashes() -> Crashes:
    result = Crashes()
    async with (
        running_daemon(runners=2, runner_config=CRASH_CONFIG) as daemon,
        daemon.channel() as channel,
        _following(daemon, channel) as events,
    ):
        await _idle_rss(daemon, channel, result)
        # The RUNNING process of each runner, and since when (daemon time).
        current: dict[str, tuple[int, float]] = {}
        for event in events.events:
            change = event.runner_state_changed
            if change.to_state == RUNNING:
                current[change.runner_id] = (change.pid, _seconds(event))
        ids = sorted(current)
        if len(ids) != 2:
            raise RuntimeError(f"expected 2 RUNNING runners, saw {ids}")
        for kill in range(KILLS):
            runner_id = ids[kill % len(ids)]
            pid, since = current[runner_id]
            # Past stable_seconds, so this crash is restarted at once.
            wait = since + STABLE_SECONDS + 0.15 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            mark = len(events.events)
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)

            def exited(event: event_pb2.Event, pid: int = pid) -> bool:
                change = event.runner_state_changed
                return change.pid == pid and change.to_state == EXITED

            index, exit_event = await events.wait_for(exited, mark, f"EXITED of pid {pid}")

            def running(event: event_pb2.Event, runner_id: str = runner_id) -> bool:
                change = event.runner_state_changed
                return change.runner_id == runner_id and change.to_state == RUNNING

            last, run_event = await events.wait_for(running, index, f"RUNNING of {runner_id}")
            result.noticed.append(_seconds(exit_event) - killed_at)
            result.back.append(_seconds(run_event) - killed_at)
            if any(
                e.runner_state_changed.to_state == BACKOFF for e in events.events[index : last + 1]
            ):
                result.backed_off += 1
            current[runner_id] = (run_event.runner_state_changed.pid, _seconds(run_event))
    return result


# -- 3: many runners from daemon start ------------------------------------------


async def _many_start() -> float:
    daemon = BenchDaemon(MANY)
    started = time.time()
    daemon.spawn()
    try:
        deadline = time.monotonic() + 30
        while not (daemon.paths.token_file.exists() and daemon.paths.socket.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not create its socket")
            await asyncio.sleep(0.005)
        async with daemon.channel() as channel, _following(daemon, channel) as events:
            running: dict[str, float] = {}
            index = 0
            while len(running) < MANY:
                index, event = await events.wait_for(
                    lambda e: e.runner_state_changed.to_state == RUNNING,
                    index,
                    f"{MANY} runners RUNNING ({len(running)} so far)",
                )
                running.setdefault(event.runner_state_changed.runner_id, _seconds(event))
                index += 1
            return max(running.values()) - started
    finally:
        daemon.stop()


def _many_floor() -> float:
    """MANY bare interpreters importing grpc at once: what MANY runners cannot beat.
    They leave with os._exit, as the clock stops before a runner's teardown too."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen([PY, "-c", "import grpc, os; os._exit(0)"], stdout=subprocess.DEVNULL)
        for _ in range(MANY)
    ]
    try:
        for process in processes:
            process.wait()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return time.perf_counter() - started


# -- 5: a real supervisord with its default program settings -----------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = self._connection[1]
        if connection is None:
            connection = _UnixConnection(self._path)
            self._connection = (host, connection)
        return connection


class Supervisord:
    def __init__(self, executable: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stigmer-bench-supervisord-"))
        self.socket = str(self.dir / "supervisor.sock")
        command = f'{shlex.quote(PY)} -c "import time; time.sleep(1e9)"'
        self.conf = self.dir / "supervisord.conf"
        self.conf.write_text(
            f"[unix_http_server]\nfile={self.socket}\n\n"
            f"[supervisord]\nlogfile={self.dir / 'supervisord.log'}\n"
            f"pidfile={self.dir / 'supervisord.pid'}\nchildlogdir={self.dir}\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{self.socket}\n\n"
            # Its defaults: startsecs=1, autorestart=unexpected, startretries=3.
            f"[program:prog]\ncommand={command}\n"
        )
        self.process = subprocess.Popen(
            [executable, "-c", str(self.conf), "-n"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.rpc = xmlrpc.client.ServerProxy("http://localhost", _UnixTransport(self.socket))

    def info(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.rpc.supervisor.getProcessInfo("prog"))

    def wait_running(self) -> int:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                info = self.info()
                if info["statename"] == "RUNNING":
                    return int(info["pid"])
            time.sleep(0.01)
        raise RuntimeError("supervisord's program did not reach RUNNING")

    def children(self) -> set[int]:
        return {
            child.pid
            for child in psutil.Process(self.process.pid).children()
            if child.status() != psutil.STATUS_ZOMBIE
        }

    def stop(self) -> None:
        pids: set[int] = set()
        with contextlib.suppress(psutil.Error):
            pids = self.children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        self.rpc("close")()
        shutil.rmtree(self.dir, ignore_errors=True)


def _supervisord_polled(sup: Supervisord) -> tuple[float, float]:
    """Kill to a new pid, and kill to RUNNING, asking supervisord every 1 ms."""
    pid = sup.wait_running()
    killed_at = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    respawned = 0.0
    deadline = killed_at + WAIT_SECONDS
    while time.perf_counter() < deadline:
        info = sup.info()
        now = time.perf_counter() - killed_at
        if info["pid"] not in (0, pid):
            respawned = respawned or now
            if info["statename"] == "RUNNING":
                return respawned, now
        time.sleep(0.001)
    raise RuntimeError("supervisord did not bring its program back")


def _supervisord_unobserved(sup: Supervisord) -> tuple[float, float]:
    """Kill to the dead child reaped, and kill to a new child, seen in /proc only:
    XML-RPC requests wake supervisord's loop, so asking it would speed it up."""
    pid = sup.wait_running()
    time.sleep(0.05)
    killed_at = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    reaped = 0.0
    deadline = killed_at + WAIT_SECONDS
    while time.perf_counter() < deadline:
        now = time.perf_counter() - killed_at
        if not reaped and not psutil.pid_exists(pid):
            reaped = now
        with contextlib.suppress(psutil.Error):
            if sup.children() - {pid}:
                return reaped or now, now
        time.sleep(0.001)
    raise RuntimeError("supervisord did not respawn its program")


def _supervisord(executable: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    sup = Supervisord(executable)
    try:
        polled = [_supervisord_polled(sup) for _ in range(SUPERVISORD_KILLS)]
        unobserved = [_supervisord_unobserved(sup) for _ in range(SUPERVISORD_KILLS)]
        return polled, unobserved
    finally:
        sup.stop()


def main() -> None:
    grpc_floor = floor_import("grpc", 5) * 1000
    crashes = asyncio.run(_crashes())
    noticed = [s * 1000 for s in crashes.noticed]
    back = [s * 1000 for s in crashes.back]
    report("runner exit noticed (SIGKILL to EXITED), p50", median(noticed), "ms", None, "< 20 ms")
    report("runner exit noticed, p99", percentile(noticed, 99), "ms")
    report("killed runner back to RUNNING, p50", median(back), "ms", grpc_floor, "< 300 ms")
    report("killed runner back to RUNNING, p99", percentile(back, 99), "ms")
    print(f"  ({len(back)} kills, {crashes.backed_off} of them went through BACKOFF)", flush=True)

    many_floor = median([_many_floor() for _ in range(MANY_RUNS)])
    many = median([asyncio.run(_many_start()) for _ in range(MANY_RUNS)])
    report(f"{MANY} runners from daemon start to all RUNNING", many, "s", many_floor, "< 3 s")

    report("idle RSS daemon (2 runners, no task)", crashes.daemon_rss / MIB, "MiB", None, "< 60")
    runner_rss = [r / MIB for r in crashes.runner_rss]
    report("idle RSS runner, max", max(runner_rss), "MiB", None, "< 45")
    report("idle RSS runner, median", median(runner_rss), "MiB")

    executable = shutil.which("supervisord")
    if executable is None:
        print("supervisord: not installed (apt-get install supervisor); skipped", flush=True)
        return
    polled, unobserved = _supervisord(executable)
    respawn = median([p[0] for p in polled]) * 1000
    running = median([p[1] for p in polled]) * 1000
    report("supervisord: crash to respawn (polled 1 ms)", respawn, "ms")
    report("supervisord: crash to RUNNING (startsecs=1)", running, "ms")
    reaped = median([u[0] for u in unobserved]) * 1000
    quiet_respawn = median([u[1] for u in unobserved]) * 1000
    report("supervisord: crash to reaped (unobserved)", reaped, "ms")
    report("supervisord: crash to respawn (unobserved)", quiet_respawn, "ms")


if __name__ == "__main__":
    main()
