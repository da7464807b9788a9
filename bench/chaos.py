"""Chaos: runners and the daemon SIGKILLed at random while tasks run; nothing may be lost.

A daemon with 4 runners (`max_failures = 1000` and a short backoff, so no number of
kills ends a runner FATAL) and the fake Messages API (tests/fake_anthropic.py). We
submit TASKS tasks, each with a retry policy of 3 attempts: nine in ten are command
tasks (`sh -c "echo $i; sleep 0.0NNNNN"`, the sleep's argument a marker of this run
so a leftover process can be found), one in ten AUTONOMOUS agent tasks whose model
asks for a bash call (echo, then the same marked sleep) or ends its turn (the fake's
scripted queue is shared by every request, so it is kept topped up with both kinds
of reply; any order ends each task within its turn limit).

While they run, a chaos loop SIGKILLs RUNNING runners that hold a task (RUNNER_KILLS
of them) and SIGKILLs the daemon and starts it again (DAEMON_KILLS times), spread
over the run by progress: runner kill k comes when k/(kills + 2) of the tasks have
ended; the first daemon kill when half the tasks are submitted (creates in flight),
daemon kill k + 1 when k/DAEMON_KILLS of them have ended.
A task whose runner dies is retried (a `retrying` event, then queued again) or, its
attempts spent, fails with the reason; a restarted daemon settles the tasks the
killed one left running the same way. Every client call survives the restarts: it
is retried on UNAVAILABLE (and DEADLINE_EXCEEDED), and creates carry a request_id,
so a create retried after the daemon died cannot make a second task.

Afterwards, checked and printed:
- every task submitted exists once (no duplicate from a retried create), and is in
  a terminal state (within the time bound);
- each task's events, as WatchTask replays them, are seq 1..n without a gap or a
  duplicate, with exactly one `finished` event, the last, agreeing with the task's
  state; the same again straight from the database;
- `PRAGMA integrity_check` is ok on the database (opened read-only once the daemon
  has stopped);
- no process of ours is left: no daemon, no runner (every pid seen, and any process
  whose environment names this run's STIGMER_HOME), no process whose command line
  holds the marker.

`python -m bench.chaos [TASKS RUNNER_KILLS DAEMON_KILLS SECONDS]` (`make chaos` runs the
full size); it exits non-zero when a check fails. tests/e2e/test_chaos.py and the
reliability report call `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psutil

from bench.common import PY, REPO, BenchDaemon, terminate
from protos import (
    daemon_service_pb2,
    daemon_service_pb2_grpc,
    event_pb2,
    runner_pb2,
    runner_service_pb2,
    runner_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)
from tests.fake_anthropic import FakeAnthropic, fake_anthropic, reply, tool_use

TASKS = 500
RUNNER_KILLS = 50
DAEMON_KILLS = 3
SECONDS = 150.0
RUNNERS = 4
MAX_ATTEMPTS = 3
AGENT_EVERY = 10  # one task in ten is an agent task
KEY = "sk-ant-test-chaos-" + uuid.uuid4().hex
RUNNER_CONFIG = (
    "max_failures = 1000\n"
    "failure_window_seconds = 60\n"
    "stable_seconds = 0.5\n"
    "backoff_initial_seconds = 0.05\n"
    "backoff_max_seconds = 0.2\n"
)
# Per call; a call is tried again until its overall deadline when the daemon is away.
CALL_TIMEOUT = 10.0
RETRY_FOR = 60.0
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
TERMINAL = {
    task_pb2.TASK_STATE_SUCCEEDED,
    task_pb2.TASK_STATE_FAILED,
    task_pb2.TASK_STATE_CANCELLED,
    task_pb2.TASK_STATE_TIMED_OUT,
}

T = TypeVar("T")


def _state_name(state: int) -> str:
    return task_pb2.TaskState.Name(state).removeprefix("TASK_STATE_")  # type: ignore[arg-type]


class ChaosDaemon(BenchDaemon):
    """A BenchDaemon that can be SIGKILLed and started again on the same home, logs to a
    file there, and keeps its home until `remove`."""

    def __init__(self, base_url: str) -> None:
        config = f'[secrets]\nrequired = []\n[agent]\nbase_url = "{base_url}"\n'
        super().__init__(RUNNERS, RUNNER_CONFIG, config, {"ANTHROPIC_API_KEY": KEY})
        self.log = self.home / "daemon-chaos.log"

    def spawn(self) -> None:
        env = dict(self.env)
        env["STIGMER_SECRETS_ON_STDIN"] = "1"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [PY, "-m", "daemon"],
                cwd=REPO,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
            )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.secrets).encode())
        self.process.stdin.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code."""
        return terminate(self.process, timeout)

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


class Api:
    """The client side: stubs on one channel, each call retried while the daemon is away."""

    def __init__(self, daemon: ChaosDaemon) -> None:
        self.daemon = daemon
        self.channel = daemon.channel()
        self.md = daemon.metadata()
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.runners = runner_service_pb2_grpc.RunnerServiceStub(self.channel)
        self.status_stub = daemon_service_pb2_grpc.DaemonServiceStub(self.channel)
        # Calls tried again while the daemon was away, by method.
        self.retried: Counter[str] = Counter()

    async def call(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                return await make()
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {exc.code().name}: {exc.details()}") from None
                self.retried[what.split()[0]] += 1
            await asyncio.sleep(0.05)

    async def create(self, spec: task_pb2.TaskSpec, request_id: str) -> task_pb2.Task:
        request = task_service_pb2.CreateTaskRequest(spec=spec, request_id=request_id)
        return await self.call(
            lambda: self.tasks.CreateTask(request, metadata=self.md, timeout=CALL_TIMEOUT),
            f"CreateTask {request_id}",
        )

    async def status(self) -> daemon_service_pb2.DaemonStatus:
        request = daemon_service_pb2.GetStatusRequest()
        return await self.call(
            lambda: self.status_stub.GetStatus(request, metadata=self.md, timeout=CALL_TIMEOUT),
            "GetStatus",
        )

    async def list_runners(self) -> list[runner_pb2.Runner]:
        request = runner_service_pb2.ListRunnersRequest()
        listed = await self.call(
            lambda: self.runners.ListRunners(request, metadata=self.md, timeout=CALL_TIMEOUT),
            "ListRunners",
        )
        return list(listed.runners)

    async def all_tasks(self) -> list[task_pb2.Task]:
        found: list[task_pb2.Task] = []
        token = ""
        while True:
            request = task_service_pb2.ListTasksRequest(page_size=1000, page_token=token)
            page = await self.call(
                lambda request=request: self.tasks.ListTasks(  # type: ignore[misc]
                    request, metadata=self.md, timeout=CALL_TIMEOUT
                ),
                "ListTasks",
            )
            found.extend(page.tasks)
            token = page.next_page_token
            if not token:
                return found

    async def events(self, task_id: str) -> list[event_pb2.Event]:
        """Every stored event of a terminal task (the stream ends at `finished`)."""

        async def replay() -> list[event_pb2.Event]:
            out: list[event_pb2.Event] = []
            stream = self.tasks.WatchTask(
                task_service_pb2.WatchTaskRequest(task_id=task_id),
                metadata=self.md,
                timeout=CALL_TIMEOUT,
            )
            async for batch in stream:
                out.extend(batch.events)
            return out

        return await self.call(replay, f"WatchTask {task_id}")

    async def close(self) -> None:
        await self.channel.close(None)


def _marker(rng: random.Random) -> str:
    """A sleep argument (about 30 to 60 ms) no other process on this host is likely to use."""
    return f"0.0{rng.randint(30000, 59999)}{rng.randint(10, 99)}"


def _spec(i: int, marker: str) -> task_pb2.TaskSpec:
    retry = task_pb2.RetryPolicy(max_attempts=MAX_ATTEMPTS)
    if i % AGENT_EVERY == AGENT_EVERY // 2:
        return task_pb2.TaskSpec(
            agent=task_pb2.AgentSpec(
                prompt=f"chaos agent task {i}",
                policy_level=task_pb2.POLICY_LEVEL_AUTONOMOUS,
                limits=task_pb2.AgentLimits(max_turns=12, max_wall_seconds=120),
            ),
            retry=retry,
            labels={"chaos": "agent"},
        )
    return task_pb2.TaskSpec(
        command=task_pb2.CommandSpec(argv=["sh", "-c", f"echo {i}; sleep {marker}"]),
        retry=retry,
        labels={"chaos": "command"},
    )


async def _keep_scripted(api: FakeAnthropic, marker: str, stop: asyncio.Event) -> None:
    """The fake's turns are one queue for every request: never let it run dry."""
    while not stop.is_set():
        while api.remaining < 64:
            api.script(
                reply(tool_use("bash", {"command": f"echo agent; sleep {marker}"})),
                reply("done"),
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


class Run:
    def __init__(
        self,
        daemon: ChaosDaemon,
        tasks: int,
        runner_kills: int,
        daemon_kills: int,
        rng: random.Random,
        marker: str,
    ) -> None:
        self.daemon = daemon
        self.total = tasks
        self.want_runner_kills = runner_kills
        self.want_daemon_kills = daemon_kills
        self.rng = rng
        self.marker = marker
        self.api = Api(daemon)
        self.ids: dict[int, str] = {}
        self.runner_kills = 0
        self.daemon_kills = 0
        # (pid, create time) of every runner process seen, so a reused pid is never taken
        # for ours.
        self.runner_pids: set[tuple[int, float]] = set()
        self.problems: list[str] = []
        self.submitted = asyncio.Event()

    async def submit(self, workers: int = 4) -> None:
        run_id = uuid.uuid4().hex[:8]
        numbers = iter(range(self.total))

        async def worker() -> None:
            for i in numbers:
                task = await self.api.create(_spec(i, self.marker), f"chaos-{run_id}-{i}")
                self.ids[i] = task.id

        await asyncio.gather(*(worker() for _ in range(workers)))
        self.submitted.set()

    async def done(self) -> int:
        status = await self.api.status()
        return sum(c.count for c in status.task_counts if c.state in TERMINAL)

    def saw(self, runners: list[runner_pb2.Runner]) -> None:
        for runner in runners:
            if runner.pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(runner.pid)
                    self.runner_pids.add((proc.pid, proc.create_time()))

    async def _kill_a_runner(self) -> bool:
        runners = await self.api.list_runners()
        self.saw(runners)
        live = [r for r in runners if r.state == runner_pb2.RUNNER_STATE_RUNNING and r.pid]
        busy = [r for r in live if r.current_task_id]
        if not busy:
            return False
        victim = self.rng.choice(busy)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
            self.runner_kills += 1
            return True
        return False

    async def _kill_the_daemon(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.saw(await self.api.list_runners())
        self.daemon.kill()
        self.daemon_kills += 1
        self.daemon.spawn()
        # Serving again (runners come up on their own; calls wait for the socket).
        await self.api.status()

    async def chaos(self) -> None:
        """Kills spread over the run by progress, until every task has ended."""
        # The last one with some work left, so there is a busy runner to kill.
        runner_at = [
            self.total * (k + 1) / (self.want_runner_kills + 2)
            for k in range(self.want_runner_kills)
        ]
        # The first daemon kill comes mid-submission (creates in flight are retried, and
        # their request_id keeps a retried create from making a second task); the others
        # at even steps of progress.
        daemon_at = [self.total * k / self.want_daemon_kills for k in range(self.want_daemon_kills)]
        while True:
            done = await self.done()
            if done >= self.total and self.submitted.is_set():
                return
            if self.daemon_kills < len(daemon_at) and (
                len(self.ids) >= self.total // 2
                if self.daemon_kills == 0
                else done >= daemon_at[self.daemon_kills]
            ):
                await self._kill_the_daemon()
                continue
            if (
                self.runner_kills < len(runner_at)
                and done >= runner_at[self.runner_kills]
                and await self._kill_a_runner()
            ):
                await asyncio.sleep(0.02)
                continue
            await asyncio.sleep(0.03)


def _check(checks: dict[str, bool], problems: list[str], name: str, ok: bool, why: str) -> None:
    checks[name] = checks.get(name, True) and ok
    if not ok:
        problems.append(f"{name}: {why}")


async def _verify_over_api(
    run: Run, checks: dict[str, bool], problems: list[str], counts: dict[str, Any]
) -> None:
    tasks = await run.api.all_tasks()
    submitted = set(run.ids.values())
    listed = [t.id for t in tasks]
    duplicates = [i for i, n in Counter(listed).items() if n > 1]
    _check(
        checks,
        problems,
        "every task once",
        len(run.ids) == run.total and set(listed) == submitted and not duplicates,
        f"{len(run.ids)} created of {run.total}, {len(listed)} listed, "
        f"{len(set(listed) ^ submitted)} differ, duplicates {duplicates[:5]}",
    )
    by_id = {t.id: t for t in tasks}
    open_ = [t.id for t in tasks if t.state not in TERMINAL]
    _check(
        checks,
        problems,
        "every task terminal",
        not open_,
        f"{len(open_)} not terminal: {open_[:5]}",
    )
    counts["states"] = dict(Counter(_state_name(t.state) for t in tasks))
    counts["attempts"] = dict(Counter(t.attempt for t in tasks))
    reasons = Counter(
        re.sub(r"runner-\d+", "runner-N", t.result.error.split(" while ")[0].split(":")[0])
        for t in tasks
        if t.state == task_pb2.TASK_STATE_FAILED
    )
    counts["failure_reasons"] = dict(reasons.most_common(5))

    retries = 0
    bad_seq: list[str] = []
    bad_end: list[str] = []
    gate = asyncio.Semaphore(8)

    async def one(task_id: str) -> None:
        nonlocal retries
        task = by_id.get(task_id)
        if task is None or task.state not in TERMINAL:
            return  # already reported; its stream would not end
        async with gate:
            events = await run.api.events(task_id)
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            bad_seq.append(task_id)
        ends = [e for e in events if e.WhichOneof("payload") == "finished"]
        if len(ends) != 1 or ends[0] is not events[-1] or ends[0].finished.state != task.state:
            bad_end.append(task_id)
        retries += sum(1 for e in events if e.WhichOneof("payload") == "retrying")

    await asyncio.gather(*(one(t) for t in submitted))
    _check(
        checks,
        problems,
        "events seq 1..n (API)",
        not bad_seq,
        f"{len(bad_seq)} tasks with a gap or a duplicate: {bad_seq[:5]}",
    )
    _check(
        checks,
        problems,
        "one finished event, last (API)",
        not bad_end,
        f"{len(bad_end)} tasks: {bad_end[:5]}",
    )
    counts["retries"] = retries


def _verify_database(
    database: Path, ids: set[str], checks: dict[str, bool], problems: list[str]
) -> None:
    if not database.exists():
        _check(checks, problems, "integrity_check ok", False, f"no database at {database}")
        return
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        result = [row[0] for row in db.execute("PRAGMA integrity_check")]
        _check(checks, problems, "integrity_check ok", result == ["ok"], f"{result[:5]}")
        rows = db.execute(
            "SELECT task_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq),"
            " SUM(kind = 'finished'),"
            " (SELECT kind FROM events l WHERE l.task_id = e.task_id ORDER BY seq DESC LIMIT 1)"
            " FROM events e WHERE task_id != '' GROUP BY task_id"
        ).fetchall()
    finally:
        db.close()
    seen = {row[0] for row in rows}
    bad = [
        row[0]
        for row in rows
        if not (row[1] == row[2] == row[4] and row[3] == 1 and row[5] == 1 and row[6] == "finished")
    ]
    _check(
        checks,
        problems,
        "events seq 1..n, one finished, last (database)",
        not bad and ids <= seen,
        f"{len(bad)} bad: {bad[:5]}; {len(ids - seen)} tasks without events",
    )


def _ours(home: Path, marker: str, pids: set[tuple[int, float]]) -> list[psutil.Process]:
    """Live processes of this run: a process we saw (pid and start time), one with our
    STIGMER_HOME in its environment, or one whose command line holds the marker."""
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.info["cmdline"] or []
            if (proc.pid, proc.create_time()) in pids or any(marker in part for part in cmdline):
                found[proc.pid] = proc
                continue
            with contextlib.suppress(psutil.AccessDenied):
                if proc.environ().get("STIGMER_HOME") == str(home):
                    found[proc.pid] = proc
        except psutil.Error:
            continue
    return list(found.values())


def _describe(procs: list[psutil.Process]) -> str:
    out = []
    for proc in procs[:5]:
        with contextlib.suppress(psutil.Error):
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
    return "; ".join(out)


async def _run(tasks: int, runner_kills: int, daemon_kills: int, seconds: float) -> dict[str, Any]:
    started = time.monotonic()
    checks: dict[str, bool] = {}
    problems: list[str] = []
    counts: dict[str, Any] = {}
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    marker = _marker(rng)
    with fake_anthropic() as api:
        daemon = ChaosDaemon(api.base_url)
        run: Run | None = None
        elapsed = 0.0
        stop = asyncio.Event()
        scripter = asyncio.create_task(_keep_scripted(api, marker, stop))
        try:
            daemon.spawn()
            deadline = time.monotonic() + 30
            while not (daemon.paths.token_file.exists() and daemon.paths.socket.exists()):
                if daemon.process is not None and daemon.process.poll() is not None:
                    raise RuntimeError(f"daemon exited at start; see {daemon.log}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not create its socket within 30 s")
                await asyncio.sleep(0.02)
            run = Run(daemon, tasks, runner_kills, daemon_kills, rng, marker)
            while True:
                listed = await run.api.list_runners()
                if sum(r.state == runner_pb2.RUNNER_STATE_RUNNING for r in listed) == RUNNERS:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{RUNNERS} runners not RUNNING within 30 s")
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            work = asyncio.gather(run.submit(), run.chaos())
            try:
                await asyncio.wait_for(work, seconds)
            except TimeoutError:
                _check(checks, problems, f"all ended within {seconds:g} s", False, "timed out")
            else:
                checks[f"all ended within {seconds:g} s"] = True
            elapsed = time.monotonic() - t0
            _check(
                checks,
                problems,
                "chaos delivered",
                run.runner_kills == runner_kills and run.daemon_kills == daemon_kills,
                f"{run.runner_kills}/{runner_kills} runner kills, "
                f"{run.daemon_kills}/{daemon_kills} daemon kills",
            )
            await _verify_over_api(run, checks, problems, counts)
            with contextlib.suppress(RuntimeError):
                run.saw(await run.api.list_runners())
        except Exception as exc:  # a failed run still reports, cleans up and exits non-zero
            _check(checks, problems, "run completed", False, f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            scripter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scripter
            if run is not None:
                await run.api.close()
            code = daemon.terminate()
            _check(checks, problems, "daemon stopped cleanly", code == 0, f"exit code {code}")
        pids = set(run.runner_pids if run is not None else set())
        # What the stop left: give process groups a moment to end, then name and end it.
        left: list[psutil.Process] = []
        for _ in range(50):
            left = _ours(daemon.home, marker, pids)
            if not left:
                break
            await asyncio.sleep(0.1)
        _check(checks, problems, "no process left", not left, _describe(left))
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if run is not None:
            _verify_database(daemon.paths.database, set(run.ids.values()), checks, problems)
    ok = all(checks.values())
    result: dict[str, Any] = {
        "tasks": tasks,
        "agent_tasks": sum(1 for i in range(tasks) if i % AGENT_EVERY == AGENT_EVERY // 2),
        "states": counts.get("states", {}),
        "attempts": counts.get("attempts", {}),
        "failure_reasons": counts.get("failure_reasons", {}),
        "runner_kills": run.runner_kills if run else 0,
        "daemon_kills": run.daemon_kills if run else 0,
        "retries": counts.get("retries", 0),
        "client_calls_retried": dict(run.api.retried) if run else {},
        "model_requests": len(api.message_requests),
        "elapsed_seconds": elapsed,
        "total_seconds": time.monotonic() - started,
        "seed": seed,
        "checks": checks,
        "problems": problems,
        "ok": ok,
        "home": str(daemon.home),
    }
    if ok:
        daemon.remove()
    return result


def run(
    tasks: int = TASKS,
    runner_kills: int = RUNNER_KILLS,
    daemon_kills: int = DAEMON_KILLS,
    seconds: float = SECONDS,
) -> dict[str, Any]:
    """One chaos run; the figures and every check (`ok` is True when all passed). A failed
    run keeps its STIGMER_HOME (`home`, with the daemon's log) for a look."""
    return asyncio.run(_run(tasks, runner_kills, daemon_kills, seconds))


def show(result: dict[str, Any]) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(result["states"].items()))
    attempts = ", ".join(f"{k}: {v}" for k, v in sorted(result["attempts"].items()))
    print(
        f"chaos: {result['tasks']} tasks ({result['agent_tasks']} agent), "
        f"{RUNNERS} runners, up to {MAX_ATTEMPTS} attempts each"
    )
    print(f"  final states            {states}")
    print(f"  tasks by attempts       {attempts}")
    if result["failure_reasons"]:
        print(f"  failure reasons         {result['failure_reasons']}")
    print(f"  runner kills (SIGKILL)  {result['runner_kills']}")
    print(f"  daemon kills (SIGKILL)  {result['daemon_kills']}")
    print(f"  retries seen            {result['retries']}")
    retried = ", ".join(f"{k} {v}" for k, v in sorted(result["client_calls_retried"].items()))
    print(f"  client calls retried    {retried or 'none'}")
    print(f"  model requests          {result['model_requests']}")
    elapsed, total = result["elapsed_seconds"], result["total_seconds"]
    print(f"  elapsed                 {elapsed:.1f} s (all {total:.1f} s)")
    for name, passed in result["checks"].items():
        print(f"  {'ok  ' if passed else 'FAIL'}  {name}")
    for problem in result["problems"]:
        print(f"  problem: {problem}")
    if not result["ok"]:
        print(f"  kept for a look: {result['home']}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = [float(a) for a in (sys.argv[1:] if argv is None else argv)]
    sizes = [TASKS, RUNNER_KILLS, DAEMON_KILLS, SECONDS]
    for index, value in enumerate(args[:4]):
        sizes[index] = value
    result = run(int(sizes[0]), int(sizes[1]), int(sizes[2]), sizes[3])
    show(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
