"""Test helpers: a real daemon in a subprocess, a real gRPC client, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2_grpc

from protos import (
    daemon_service_pb2,
    daemon_service_pb2_grpc,
    event_pb2,
    runner_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
    worker_service_pb2_grpc,
)
from shared import auth, paths

REPO = Path(__file__).resolve().parent.parent
STIGMER = Path(sys.executable).parent / "stigmer"


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Polls `predicate` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def env_for(home: Path) -> dict[str, str]:
    # No test may reach the user's own keyring or provider key.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STIGMER_", "XDG_", "DBUS_", "PYTHON_KEYRING"))
        and k != "ANTHROPIC_API_KEY"
    }
    env["STIGMER_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def stigmer(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The installed `stigmer` command on `home`, with no terminal."""
    return subprocess.run(
        [str(STIGMER), *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_config(home: Path, text: str) -> None:
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(text)


@dataclass
class Client:
    channel: grpc.aio.Channel
    token: str
    tasks: task_service_pb2_grpc.TaskServiceAsyncStub = field(init=False)
    daemon: daemon_service_pb2_grpc.DaemonServiceAsyncStub = field(init=False)
    runners: runner_service_pb2_grpc.RunnerServiceAsyncStub = field(init=False)
    worker: worker_service_pb2_grpc.WorkerServiceAsyncStub = field(init=False)
    health: Any = field(init=False)

    def __post_init__(self) -> None:
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.daemon = daemon_service_pb2_grpc.DaemonServiceStub(self.channel)
        self.runners = runner_service_pb2_grpc.RunnerServiceStub(self.channel)
        self.worker = worker_service_pb2_grpc.WorkerServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    @property
    def md(self) -> tuple[tuple[str, str]]:
        return auth.bearer(self.token)

    async def create(self, argv: list[str], **command: Any) -> task_pb2.Task:
        spec_fields = {k: command.pop(k) for k in ("workspace", "retry") if k in command}
        spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=argv, **command), **spec_fields)
        return await self.tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(spec=spec), metadata=self.md
        )

    async def get(self, task_id: str) -> task_pb2.Task:
        return await self.tasks.GetTask(
            task_service_pb2.GetTaskRequest(task_id=task_id), metadata=self.md
        )

    async def events(self, task_id: str, after_seq: int = 0) -> list[event_pb2.Event]:
        out: list[event_pb2.Event] = []
        async for batch in self.tasks.WatchTask(
            task_service_pb2.WatchTaskRequest(task_id=task_id, after_seq=after_seq),
            metadata=self.md,
        ):
            out.extend(batch.events)
        return out

    async def status(self) -> daemon_service_pb2.DaemonStatus:
        return await self.daemon.GetStatus(daemon_service_pb2.GetStatusRequest(), metadata=self.md)


def output_of(events: list[Any], stream: int = 1) -> bytes:
    return b"".join(
        e.log.data for e in events if e.WhichOneof("payload") == "log" and e.log.stream == stream
    )


class Daemon:
    """`python -m daemon` on its own STIGMER_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.paths = paths.resolve({"STIGMER_HOME": str(home)})
        self.process: subprocess.Popen[bytes] | None = None
        self._log = home / "daemon-test.log"
        self.channels: list[grpc.aio.Channel] = []
        # Added to the daemon's environment (a test keyring's bus, say).
        self.extra_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        return {**env_for(self.home), **self.extra_env}

    def spawn(self, stdin_secrets: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Starts the daemon; `stdin_secrets` are handed over as `stigmer local start` does."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env
        if stdin_secrets is not None:
            env["STIGMER_SECRETS_ON_STDIN"] = "1"
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL if stdin_secrets is None else subprocess.PIPE,
                stdout=log,
                stderr=log,
            )
        if stdin_secrets is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(stdin_secrets).encode())
            self.process.stdin.close()
        return self.process

    def run_to_exit(self) -> subprocess.CompletedProcess[bytes]:
        """Runs a daemon in the foreground that is expected to refuse to start."""
        return subprocess.run(
            [sys.executable, "-m", "daemon"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            timeout=30,
        )

    def log_text(self) -> str:
        return self._log.read_text() if self._log.exists() else ""

    async def start(
        self, runners: int | None = None, stdin_secrets: dict[str, str] | None = None
    ) -> Client:
        self.spawn(stdin_secrets)
        client = await self.connect()
        expected = runners

        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log_text()}")
            try:
                status = await client.status()
            except grpc.aio.AioRpcError:
                return False
            want = status.runners_total if expected is None else expected
            return status.runners_running == want

        await wait_until(ready, 20, "the daemon to serve with its runners registered")
        return client

    async def connect(self) -> Client:
        await wait_until(self.paths.token_file.exists, 20, "the token file")
        token = auth.read_token(self.paths.token_file)
        assert token
        channel = grpc.aio.insecure_channel(f"unix://{self.paths.socket}")
        self.channels.append(channel)
        return Client(channel, token)

    def runner_pids(self) -> list[int]:
        if self.process is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            return [
                c.pid
                for c in psutil.Process(self.process.pid).children()
                if "runner" in " ".join(c.cmdline())
            ]
        return []

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for a parent that is not ours counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def processes_with(*argv: str) -> list[psutil.Process]:
    """Live processes whose command line is exactly `argv`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["cmdline"] == list(argv) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found
