"""Runner processes: spawn, notice exit by awaiting the child, restart, stop.

Each runner is `python -m runner` in its own process group, with its address, id
and a fresh per-runner token in its environment (never on its command line)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon import policy
from shared import auth

log = logging.getLogger(__name__)


class RunnerState(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"
    UNKNOWN = "UNKNOWN"


@dataclass
class Runner:
    id: str
    state: RunnerState = RunnerState.STOPPED
    pid: int = 0
    token: str = ""
    start_time: float | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    reason: str = ""
    # Process group of the task the runner is running, killed if the runner dies first.
    task_pgid: int = 0
    failures: int = 0
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def restart_delay(failures: int) -> float:
    """The first failure restarts at once; later ones back off (0.5 s doubling, 30 s cap)."""
    return 0.0 if failures <= 1 else min(30.0, 0.5 * 2 ** (failures - 2))


class Supervisor:
    def __init__(
        self,
        count: int,
        address: str,
        log_dir: Path,
        grace_seconds: float,
        on_runner_lost: Callable[[str, str], object],
        clock: Callable[[], float],
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self._runners = {f"runner-{i}": Runner(f"runner-{i}") for i in range(count)}
        self._address = address
        self._log_dir = log_dir
        self._grace = grace_seconds
        self._on_lost = on_runner_lost
        self._clock = clock
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._stopping = asyncio.Event()

    # -- queries -------------------------------------------------------------

    def runners(self) -> list[Runner]:
        return list(self._runners.values())

    def runner_for_token(self, token: str) -> str | None:
        for runner in self._runners.values():
            if runner.token and runner.token == token:
                return runner.id
        return None

    # -- state ---------------------------------------------------------------

    def _transition(self, runner: Runner, to: RunnerState, reason: str = "") -> None:
        if runner.state is to:
            return
        log.info(
            "%s %s -> %s%s",
            runner.id,
            runner.state.value,
            to.value,
            f" ({reason})" if reason else "",
        )
        runner.state = to
        runner.reason = reason

    def register(self, runner_id: str, pid: int) -> bool:
        runner = self._runners.get(runner_id)
        if runner is None or runner.pid != pid or runner.state is not RunnerState.STARTING:
            return False
        self._transition(runner, RunnerState.RUNNING)
        return True

    def note_task_process(self, runner_id: str, pgid: int) -> None:
        runner = self._runners.get(runner_id)
        if runner is not None:
            runner.task_pgid = pgid

    def task_done(self, runner_id: str) -> None:
        runner = self._runners.get(runner_id)
        if runner is not None:
            runner.task_pgid = 0

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for runner in self._runners.values():
            runner.task = asyncio.create_task(self._keep(runner), name=runner.id)

    async def _spawn(self, runner: Runner) -> asyncio.subprocess.Process:
        runner.token = auth.new_token()
        env = dict(self._base_env)
        env.update(
            {
                auth.ENV_ADDRESS: self._address,
                auth.ENV_RUNNER_ID: runner.id,
                auth.ENV_RUNNER_TOKEN: runner.token,
                auth.ENV_DAEMON_PID: str(os.getpid()),
            }
        )
        # A local file opened for append: no wait worth a thread.
        with open(self._log_dir / f"{runner.id}.log", "ab") as out:  # noqa: ASYNC230
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runner",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        runner.process = process
        runner.pid = process.pid
        runner.start_time = self._clock()
        return process

    async def _keep(self, runner: Runner) -> None:
        """Runs the runner until the supervisor stops, restarting it when it exits."""
        while not self._stopping.is_set():
            self._transition(runner, RunnerState.STARTING)
            process = await self._spawn(runner)
            if self._stopping.is_set():
                _signal_group(process.pid, signal.SIGTERM)
            code = await process.wait()
            ran_for = self._clock() - (runner.start_time or 0.0)
            self._exited(runner, code)
            if self._stopping.is_set():
                break
            runner.failures = 1 if ran_for > 60 else runner.failures + 1
            delay = restart_delay(runner.failures)
            if delay:
                self._transition(runner, RunnerState.BACKOFF, f"restarting in {delay:.1f} s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
            runner.restarts += 1
        self._transition(runner, RunnerState.STOPPED)

    def _exited(self, runner: Runner, code: int) -> None:
        reason = policy.describe_exit(code)
        runner.last_exit_code = code
        runner.token = ""
        runner.pid = 0
        if runner.task_pgid:
            # The runner died before its task's processes: end them too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(runner.task_pgid, signal.SIGKILL)
            runner.task_pgid = 0
        self._transition(runner, RunnerState.EXITED, reason)
        self._on_lost(runner.id, reason)

    async def stop_all(self) -> None:
        """Stops every runner in parallel: SIGTERM to its group, SIGKILL after the grace period."""
        self._stopping.set()
        await asyncio.gather(*(self._stop(r) for r in self._runners.values()))

    async def _stop(self, runner: Runner) -> None:
        process = runner.process
        if process is not None and process.returncode is None:
            self._transition(runner, RunnerState.STOPPING)
            _signal_group(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(self._grace):
                    await process.wait()
            except TimeoutError:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", runner.id, self._grace)
                _signal_group(process.pid, signal.SIGKILL)
        if process is not None and process.returncode is None:
            await process.wait()
        if runner.task is not None:
            # It sees the exit, settles the runner's task and ends its loop.
            await runner.task


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
