"""The supervisor: a thin asyncio loop per runner over the pure rules in policy.py.

Each runner is `python -m runner` in its own process group, with its address, id and
a fresh per-runner token in its environment (never on its command line). Its exit is
noticed by awaiting the child; its output goes to a rotating log and a ring buffer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon import policy as task_policy
from daemon.bus import wait
from daemon.config import RunnerPolicy
from daemon.errors import InvalidArgument, NotFound
from daemon.runlog import RunnerLog
from daemon.supervision import policy
from daemon.supervision.journal import Journal, identify
from daemon.supervision.policy import ExitKind, History
from daemon.supervision.states import RunnerState, check
from daemon.supervision.stats import Sampler
from shared import auth

log = logging.getLogger(__name__)

S = RunnerState
MAX_RUNNERS = 64
# After SIGKILL, how long before a process that is still there is UNKNOWN.
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Transition:
    runner_id: str
    from_state: RunnerState
    to_state: RunnerState
    pid: int
    exit_code: int | None
    reason: str


@dataclass
class Runner:
    id: str
    log: RunnerLog
    state: RunnerState = S.STOPPED
    pid: int = 0
    token: str = ""
    start_time: float | None = None
    running_since: float | None = None
    last_seen: float = 0.0
    restarts: int = 0
    last_exit_code: int | None = None
    last_pid: int = 0
    reason: str = ""
    want_running: bool = False
    restart_requested: bool = False
    draining: bool = False
    hung: bool = False
    task_pgid: int = 0
    history: History = field(default_factory=History)
    sampler: Sampler = field(default_factory=Sampler)
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    loop_task: asyncio.Task[None] | None = field(default=None, repr=False)
    # Set whenever a request changes what the loop should do (stop, start, restart).
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    exited: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class Supervisor:
    def __init__(
        self,
        count: int,
        address: str,
        log_dir: Path,
        journal: Journal,
        rules: RunnerPolicy,
        on_runner_lost: Callable[[str, str], object],
        on_transition: Callable[[Transition], object],
        current_task: Callable[[str], str | None],
        clock: Callable[[], float],
        secret_env: Callable[[], Awaitable[dict[str, str]]],
        redact: Callable[[bytes], bytes] | None = None,
        base_env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._address = address
        self._log_dir = log_dir
        self._journal = journal
        self._rules = rules
        self._on_lost = on_runner_lost
        self._on_transition = on_transition
        self._current_task = current_task
        self._clock = clock
        self._secret_env = secret_env
        self._redact = redact
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._rng = rng or random.Random()
        self._runners: dict[str, Runner] = {}
        self._closing = False
        self._initial = count
        self._background: set[asyncio.Task[None]] = set()

    # -- queries -------------------------------------------------------------

    def runners(self) -> list[Runner]:
        return sorted(self._runners.values(), key=lambda r: int(r.id.rsplit("-", 1)[1]))

    def get(self, runner_id: str) -> Runner:
        runner = self._runners.get(runner_id)
        if runner is None:
            known = ", ".join(r.id for r in self.runners()) or "none"
            raise NotFound(f"no runner {runner_id!r}; runners: {known}")
        return runner

    def runner_for_token(self, token: str) -> str | None:
        for runner in self._runners.values():
            if runner.token and runner.token == token:
                return runner.id
        return None

    def current_task(self, runner_id: str) -> str | None:
        return self._current_task(runner_id)

    def may_claim(self, runner_id: str) -> bool:
        runner = self._runners.get(runner_id)
        return bool(
            runner
            and runner.state is S.RUNNING
            and runner.want_running
            and not runner.draining
            and not self._closing
        )

    # -- what runners tell us ------------------------------------------------

    def seen(self, runner_id: str) -> None:
        runner = self._runners.get(runner_id)
        if runner is not None:
            runner.last_seen = self._clock()

    def register(self, runner_id: str, pid: int) -> bool:
        runner = self._runners.get(runner_id)
        if runner is None or runner.pid != pid or runner.state is not S.STARTING:
            return False
        runner.running_since = runner.last_seen = self._clock()
        self._transition(runner, S.RUNNING)
        return True

    def note_task_process(self, runner_id: str, pgid: int) -> None:
        runner = self._runners.get(runner_id)
        entry = identify(pgid)
        if runner is not None and entry is not None:
            runner.task_pgid = pgid
            self._journal.record(f"{runner_id}/task", entry)

    def task_done(self, runner_id: str) -> None:
        runner = self._runners.get(runner_id)
        if runner is not None and runner.task_pgid:
            runner.task_pgid = 0
            self._journal.forget(f"{runner_id}/task")

    # -- state ---------------------------------------------------------------

    def _transition(
        self, runner: Runner, to: RunnerState, reason: str = "", exit_code: int | None = None
    ) -> None:
        """The one place a runner's state changes; every change is published."""
        if runner.state is to and runner.reason == reason:
            return
        if runner.state is not to:
            check(runner.state, to)
        # A move caused by an exit names the process that exited.
        pid = runner.pid if exit_code is None else runner.last_pid
        change = Transition(runner.id, runner.state, to, pid, exit_code, reason)
        runner.state, runner.reason = to, reason
        log.info(
            "%s %s -> %s%s",
            runner.id,
            change.from_state.value,
            to.value,
            f" ({reason})" if reason else "",
        )
        self._on_transition(change)

    # -- control -------------------------------------------------------------

    def start_all(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self._initial):
            self._add(index)
        for runner in self.runners():
            self._launch(runner)

    def _add(self, index: int) -> Runner:
        runner_id = f"runner-{index}"
        runner = Runner(
            runner_id,
            RunnerLog(
                self._log_dir / f"{runner_id}.log",
                self._rules.log_max_bytes,
                self._rules.log_backups,
                redact=self._redact,
            ),
        )
        self._runners[runner_id] = runner
        return runner

    def _launch(self, runner: Runner) -> None:
        runner.want_running = True
        runner.wake.set()
        if runner.draining:
            runner.draining = False
            if runner.state is S.STOPPING:
                self._transition(runner, S.RUNNING, "stop cancelled")
        if runner.loop_task is None or runner.loop_task.done():
            # Said at once, so the answer to a start already shows it.
            self._transition(runner, S.STARTING)
            runner.loop_task = asyncio.create_task(self._keep(runner), name=runner.id)

    def _select(self, runner_id: str, every: bool) -> list[Runner]:
        if every == bool(runner_id):
            raise InvalidArgument("runner_id", runner_id, "name one runner, or set `all`")
        return self.runners() if every else [self.get(runner_id)]

    async def start(self, runner_id: str = "", every: bool = False) -> list[Runner]:
        chosen = self._select(runner_id, every)
        for runner in chosen:
            if runner.state in (S.FATAL, S.EXITED, S.STOPPED, S.UNKNOWN):
                runner.history.reset()
            self._launch(runner)
        return chosen

    async def stop(
        self, runner_id: str = "", every: bool = False, drain: bool = False
    ) -> list[Runner]:
        chosen = self._select(runner_id, every)
        await asyncio.gather(*(self._stop_one(r, drain, restart=False) for r in chosen))
        return chosen

    async def restart(
        self, runner_id: str = "", every: bool = False, drain: bool = False
    ) -> list[Runner]:
        chosen = self._select(runner_id, every)
        for runner in chosen:
            if runner.process is None or runner.process.returncode is not None:
                runner.history.reset()
                self._launch(runner)
        await asyncio.gather(
            *(self._stop_one(r, drain, restart=True) for r in chosen if r.process is not None)
        )
        return chosen

    async def restart_running(self, drain: bool) -> None:
        """Restarts the runners that have a process (so they read their environment
        again); stopped or FATAL ones read it whenever they next start."""
        alive = [r for r in self.runners() if r.process is not None and r.want_running]
        await asyncio.gather(*(self._stop_one(r, drain, restart=True) for r in alive))

    async def scale(self, count: int) -> list[Runner]:
        if not 0 <= count <= MAX_RUNNERS:
            raise InvalidArgument("count", count, f"use 0 to {MAX_RUNNERS}")
        current = self.runners()
        if count > len(current):
            used = {int(r.id.rsplit("-", 1)[1]) for r in current}
            free = (i for i in range(MAX_RUNNERS) if i not in used)
            for _ in range(count - len(current)):
                self._launch(self._add(next(free)))
        elif count < len(current):
            # Idle runners go first, the newest first; busy ones finish their task.
            ranked = sorted(
                current,
                key=lambda r: (self._current_task(r.id) is not None, -int(r.id.rsplit("-", 1)[1])),
            )
            victims = ranked[: len(current) - count]
            idle = [r for r in victims if self._current_task(r.id) is None]
            for runner in victims:
                if runner not in idle:
                    # A busy runner finishes its task first; the answer does not wait for it.
                    retiring = asyncio.create_task(self._retire(runner))
                    self._background.add(retiring)
                    retiring.add_done_callback(self._background.discard)
            await asyncio.gather(*(self._retire(r) for r in idle))
        return self.runners()

    async def _retire(self, runner: Runner) -> None:
        await self._stop_one(runner, drain=True, restart=False)
        if runner.loop_task is not None:
            await runner.loop_task
        runner.log.close()
        self._runners.pop(runner.id, None)

    async def _stop_one(self, runner: Runner, drain: bool, restart: bool) -> None:
        if not restart:
            runner.want_running = False
        runner.restart_requested = restart
        runner.wake.set()
        process = runner.process
        if process is None or process.returncode is not None:
            if not restart and runner.loop_task is not None:
                await runner.loop_task  # a runner in backoff stops at once
            return
        if drain:
            # Refuse it new work first, so it cannot pick a task up between the
            # check and the signal; a busy runner exits when its next claim is refused.
            runner.draining = True
            task_id = self._current_task(runner.id)
            if task_id is not None:
                then = "restarts" if restart else "stops"
                self._transition(runner, S.STOPPING, f"draining: {then} after task {task_id}")
                return
        await self._terminate(runner, process)

    async def _terminate(self, runner: Runner, process: asyncio.subprocess.Process) -> None:
        """SIGTERM to the runner's group, SIGKILL after the grace period, UNKNOWN if
        even that does not end it."""
        grace = self._rules.stop_grace_seconds
        if runner.state is not S.STOPPING:
            self._transition(runner, S.STOPPING, "stop requested")
        _signal_group(process.pid, signal.SIGTERM)
        if await wait(runner.exited, grace):
            return
        log.warning("%s ignored SIGTERM for %g s; killing it", runner.id, grace)
        _signal_group(process.pid, signal.SIGKILL)
        if await wait(runner.exited, KILL_WAIT_SECONDS):
            return
        self._transition(runner, S.UNKNOWN, f"still alive {KILL_WAIT_SECONDS:g} s after SIGKILL")

    async def shutdown(self) -> None:
        """Stops every runner in parallel under one deadline (grace, then SIGKILL)."""
        self._closing = True
        await asyncio.gather(
            *(self._stop_one(r, drain=False, restart=False) for r in self.runners())
        )
        await asyncio.gather(*(r.loop_task for r in self.runners() if r.loop_task is not None))
        for runner in self.runners():
            runner.log.close()

    # -- the loop ------------------------------------------------------------

    async def _keep(self, runner: Runner) -> None:
        """Keeps one runner up for as long as it is wanted."""
        while runner.want_running and not self._closing:
            runner.wake.clear()
            runner.restart_requested = runner.hung = runner.draining = False
            self._transition(runner, S.STARTING)
            try:
                process = await self._spawn(runner)
            except OSError as exc:
                self._transition(runner, S.FATAL, f"cannot start: {exc}")
                break
            code = await self._watch(runner, process)
            kind, description = self._classify(runner, code)
            running_for = self._running_for(runner)
            self._release(runner, code)
            self._on_lost(runner.id, "was stopped" if kind is ExitKind.STOPPED else description)
            if kind is ExitKind.STOPPED:
                if runner.want_running and runner.restart_requested and not self._closing:
                    runner.restarts += 1
                    continue
                if runner.state not in (S.STOPPING, S.UNKNOWN):
                    self._transition(runner, S.STOPPING, "stop requested")
                self._transition(runner, S.STOPPED, "stopped", code)
                break
            decision = policy.decide(
                self._rules, runner.history, kind, self._clock(), running_for, self._rng
            )
            if runner.state is S.RUNNING:
                self._transition(runner, S.EXITED, description, code)
            if decision.state is S.STARTING:
                runner.restarts += 1
                continue
            if decision.state is not S.BACKOFF:
                self._transition(runner, decision.state, f"{description}; {decision.reason}", code)
                break
            self._transition(runner, S.BACKOFF, f"{description}; {decision.reason}", code)
            # A stop or an explicit start cuts the wait short.
            await wait(runner.wake, decision.delay)
            if not runner.want_running or self._closing:
                self._transition(runner, S.STOPPED, "stopped during backoff")
                break
            runner.restarts += 1
        runner.want_running = False

    async def _spawn(self, runner: Runner) -> asyncio.subprocess.Process:
        runner.token = auth.new_token()
        env = dict(self._base_env)
        # Read fresh at each spawn, so a changed key reaches the next runner.
        env.update(await self._secret_env())
        env.update(
            {
                auth.ENV_ADDRESS: self._address,
                auth.ENV_RUNNER_ID: runner.id,
                auth.ENV_RUNNER_TOKEN: runner.token,
                auth.ENV_DAEMON_PID: str(os.getpid()),
            }
        )
        runner.exited.clear()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runner",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        runner.process = process
        runner.pid = process.pid
        runner.start_time = runner.last_seen = self._clock()
        runner.running_since = None
        entry = identify(process.pid)
        if entry is not None:
            self._journal.record(runner.id, entry)
        if self._closing or not runner.want_running:
            _signal_group(process.pid, signal.SIGTERM)
        return process

    async def _watch(self, runner: Runner, process: asyncio.subprocess.Process) -> int:
        """Waits for the process to end, killing it if it never registers or stops
        heartbeating. The exit itself is noticed by awaiting the child."""
        assert process.stdout is not None
        pump = asyncio.create_task(runner.log.pump(process.stdout))
        ended = asyncio.create_task(process.wait())
        tick = max(
            0.05,
            min(
                1.0,
                self._rules.heartbeat_timeout_seconds / 4,
                self._rules.start_timeout_seconds / 4,
            ),
        )
        while True:
            done, _ = await asyncio.wait({ended}, timeout=tick)
            if done:
                break
            now = self._clock()
            if runner.state is S.STARTING and policy.start_timed_out(
                runner.start_time or now, now, self._rules
            ):
                log.warning(
                    "%s did not register within %g s; killing it",
                    runner.id,
                    self._rules.start_timeout_seconds,
                )
                _signal_group(process.pid, signal.SIGKILL)
                await ended
                break
            if runner.state is S.RUNNING and policy.is_hung(runner.last_seen, now, self._rules):
                runner.hung = True
                log.warning(
                    "%s sent no heartbeat for %g s; killing it",
                    runner.id,
                    self._rules.heartbeat_timeout_seconds,
                )
                _signal_group(process.pid, signal.SIGKILL)
                await ended
                break
        code = ended.result()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(pump, 1.0)
        return code

    def _running_for(self, runner: Runner) -> float:
        if runner.running_since is None:
            return 0.0
        return self._clock() - runner.running_since

    def _classify(self, runner: Runner, code: int) -> tuple[ExitKind, str]:
        registered = runner.running_since is not None
        kind = policy.classify(
            code,
            stop_requested=runner.restart_requested or not runner.want_running or self._closing,
            hung=runner.hung,
            registered=registered,
            policy=self._rules,
        )
        if kind is ExitKind.HUNG:
            return kind, f"hung: no heartbeat for {self._rules.heartbeat_timeout_seconds:g} s"
        if kind is ExitKind.START_FAILED and code == -signal.SIGKILL:
            return kind, f"did not register within {self._rules.start_timeout_seconds:g} s"
        return kind, task_policy.describe_exit(code)

    def _release(self, runner: Runner, code: int) -> None:
        """Forgets the ended process; ends its task's processes if they outlived it."""
        if runner.task_pgid:
            _signal_group(runner.task_pgid, signal.SIGKILL)
            runner.task_pgid = 0
            self._journal.forget(f"{runner.id}/task")
        self._journal.forget(runner.id)
        runner.last_exit_code = code
        runner.last_pid = runner.pid
        runner.token = ""
        runner.process = None
        runner.pid = 0
        runner.running_since = None
        runner.exited.set()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
