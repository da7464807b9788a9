"""What the benchmarks share: a throwaway daemon, timing, and printing figures next to a floor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc

from shared import auth, paths

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
STIGMER = str(Path(PY).parent / "stigmer")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def time_command(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def floor_import(modules: str, runs: int) -> float:
    """Median wall time of a bare interpreter importing `modules`: what no daemon can beat."""
    return median([time_command([PY, "-c", f"import {modules}"]) for _ in range(runs)])


def report(
    name: str, value: float, unit: str, floor: float | None = None, target: str = ""
) -> None:
    line = f"{name:<44} {value:>10.2f} {unit:<8}"
    if floor is not None and floor > 0:
        line += f" floor {floor:>8.2f} {unit:<4} ratio {value / floor:5.2f}"
    if target:
        line += f"   target {target}"
    print(line, flush=True)


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMER_", "XDG_"))}
    env["STIGMER_HOME"] = str(home)
    return env


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; the exit code (None: never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class BenchDaemon:
    """A daemon on a fresh STIGMER_HOME, TCP off. `runner_config` is extra TOML lines
    for the [runners] table, for example "stable_seconds = 0.5"; `config` is more TOML
    tables after it, for example "[agent]\\nbase_url = ...". `secrets` are handed to the
    daemon on its stdin, as `stigmer local start` does."""

    def __init__(
        self,
        runners: int,
        runner_config: str = "",
        config: str = "",
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="stigmer-bench-"))
        config_dir = self.home / "config"
        config_dir.mkdir()
        (config_dir / "config.toml").write_text(
            f'[daemon]\ntcp_address = ""\n[runners]\ncount = {runners}\n{runner_config}\n{config}\n'
        )
        self.paths = paths.resolve({"STIGMER_HOME": str(self.home)})
        self.env = home_env(self.home)
        self.secrets = secrets
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        env = dict(self.env)
        if self.secrets is not None:
            env["STIGMER_SECRETS_ON_STDIN"] = "1"
        self.process = subprocess.Popen(
            [PY, "-m", "daemon"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL if self.secrets is None else subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self.secrets is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(self.secrets).encode())
            self.process.stdin.close()

    def metadata(self) -> tuple[tuple[str, str]]:
        token = auth.read_token(self.paths.token_file)
        assert token, "no token file"
        return auth.bearer(token)

    def channel(self) -> grpc.aio.Channel:
        # Short reconnect backoff: the default (1 s) would measure gRPC's retry timer
        # instead of the daemon when the first attempt comes before the socket.
        return grpc.aio.insecure_channel(
            f"unix://{self.paths.socket}",
            options=[
                ("grpc.initial_reconnect_backoff_ms", 2),
                ("grpc.min_reconnect_backoff_ms", 2),
                ("grpc.max_reconnect_backoff_ms", 5),
            ],
        )

    def stop(self) -> None:
        terminate(self.process, 30)
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_daemon(
    runners: int,
    runner_config: str = "",
    *,
    config: str = "",
    secrets: dict[str, str] | None = None,
) -> AsyncIterator[BenchDaemon]:
    from protos import daemon_service_pb2, daemon_service_pb2_grpc

    daemon = BenchDaemon(runners, runner_config, config, secrets)
    try:
        daemon.spawn()
        deadline = time.monotonic() + 30
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not become ready")
            if daemon.paths.token_file.exists() and daemon.paths.socket.exists():
                async with daemon.channel() as channel:
                    stub = daemon_service_pb2_grpc.DaemonServiceStub(channel)
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        status = await stub.GetStatus(
                            daemon_service_pb2.GetStatusRequest(), metadata=daemon.metadata()
                        )
                        if status.runners_running == runners:
                            break
            await asyncio.sleep(0.01)
        yield daemon
    finally:
        daemon.stop()
