"""A runner's life with the daemon: register, claim tasks one at a time, report outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from grpc import aio

from protos import task_pb2, worker_service_pb2
from runner.agent import run_agent
from runner.backoff import delays
from runner.client import CHANNEL_OPTIONS, WorkerClient, describe
from runner.command import Outcome, failed, run_command
from runner.config import Config
from runner.errors import AttemptLost, DaemonUnavailable, RunnerStopping, Transient
from runner.heartbeat import keep_alive
from runner.launch import task_environment
from runner.workspace import WorkspaceError, prepare_workspace

log = logging.getLogger(__name__)

# How long the runner keeps trying a daemon that does not answer.
REGISTER_PATIENCE = 4.0
CLAIM_RETRIES = 5
COMPLETE_PATIENCE = 30.0
# Used when the daemon leaves the matching Register fields unset.
DEFAULT_CLAIM_WAIT = 10.0
TASK_HEARTBEAT_WAIT = 1.0


async def serve(config: Config) -> int:
    """Works for the daemon until told to stop; returns the process exit code."""
    async with aio.insecure_channel(config.address, options=CHANNEL_OPTIONS) as channel:
        worker = _Worker(WorkerClient(channel, config.runner_id, config.token), config.address)
        try:
            return await worker.run()
        except DaemonUnavailable as exc:
            log.error("the daemon at %s is unavailable: %s; exiting", config.address, exc)
            return 1
        except aio.AioRpcError as exc:
            log.error("the daemon refused a call: %s; exiting", describe(exc))
            return 1


class _Worker:
    def __init__(self, client: WorkerClient, address: str) -> None:
        self._client = client
        self._address = address
        self._draining = False

    async def run(self) -> int:
        settings = await self._register()
        claim_wait = settings.max_wait_seconds or DEFAULT_CLAIM_WAIT
        heartbeat_wait = min(TASK_HEARTBEAT_WAIT, claim_wait)
        log.info("registered with the daemon at %s", self._address)
        failures = 0
        retry = delays()
        while not self._draining:
            try:
                claim = await self._client.claim(claim_wait)
            except RunnerStopping:
                log.info("the daemon is stopping this runner; exiting")
                return 0
            except Transient as exc:
                failures += 1
                if failures > CLAIM_RETRIES:
                    raise DaemonUnavailable(str(exc)) from None
                await asyncio.sleep(next(retry))
                continue
            failures = 0
            retry = delays()
            if claim.HasField("task"):
                await self._run(claim, heartbeat_wait)
        log.info("drained at the daemon's request; exiting")
        return 0

    async def _register(self) -> worker_service_pb2.RegisterResponse:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + REGISTER_PATIENCE
        retry = delays()
        while True:
            try:
                return await self._client.register()
            except Transient as exc:
                if loop.time() >= give_up:
                    raise DaemonUnavailable(
                        f"no answer for {REGISTER_PATIENCE:g} s ({exc})"
                    ) from None
                await asyncio.sleep(next(retry))

    async def _run(
        self, claim: worker_service_pb2.ClaimTaskResponse, heartbeat_wait: float
    ) -> None:
        task, attempt = claim.task, claim.attempt
        kind = task.spec.WhichOneof("kind")
        # Never the argv or env: they may hold what the user would not have logged.
        log.info("task %s attempt %d: claimed (%s)", task.id, attempt, kind)
        outcome = await self._prepare(task, attempt, heartbeat_wait)
        if outcome is not None:
            await self._complete(task.id, attempt, outcome)
            return
        if kind == "command":
            outcome = await run_command(
                self._client,
                task,
                attempt,
                claim.env,
                heartbeat_wait=heartbeat_wait,
                on_drain=self._drain,
            )
        elif kind == "agent":
            outcome = await run_agent(
                self._client,
                task,
                attempt,
                claim.env,
                heartbeat_wait=heartbeat_wait,
                on_drain=self._drain,
                skills=claim.skills,
            )
        else:
            outcome = failed(f"this runner cannot run tasks of kind {kind or 'unset'}")
        if outcome is None:
            log.info("task %s attempt %d: no longer ours; dropped", task.id, attempt)
            return
        await self._complete(task.id, attempt, outcome)

    async def _prepare(
        self, task: task_pb2.Task, attempt: int, heartbeat_wait: float
    ) -> Outcome | None:
        """Makes the workspace ready, heartbeating meanwhile (a clone can take a
        while); None when the task can start, else how it ended."""
        env = task_environment(os.environ, {}, {})
        if not task.spec.workspace.HasField("git"):
            try:
                await prepare_workspace(task, env)
            except WorkspaceError as exc:
                return failed(str(exc))
            return None
        cancel = asyncio.Event()
        beat = asyncio.create_task(
            keep_alive(
                self._client,
                task.id,
                attempt,
                heartbeat_wait,
                on_cancel=cancel.set,
                on_lost=cancel.set,
                on_drain=self._drain,
            )
        )
        ready = asyncio.create_task(prepare_workspace(task, env))
        cancelled = asyncio.create_task(cancel.wait())
        try:
            await asyncio.wait({ready, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (beat, cancelled):
                pending.cancel()
        if not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, WorkspaceError):
                await ready
            return Outcome(task_pb2.TASK_STATE_CANCELLED, task_pb2.TaskResult(error="cancelled"))
        try:
            ready.result()
        except WorkspaceError as exc:
            return failed(str(exc))
        return None

    async def _complete(self, task_id: str, attempt: int, outcome: Outcome) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + COMPLETE_PATIENCE
        retry = delays()
        state = task_pb2.TaskState.Name(outcome.state)
        while True:
            try:
                await self._client.complete(task_id, attempt, outcome.state, outcome.result)
            except AttemptLost:
                log.info("task %s attempt %d: no longer ours; %s dropped", task_id, attempt, state)
                return
            except Transient as exc:
                if loop.time() >= give_up:
                    raise DaemonUnavailable(f"could not complete task {task_id}: {exc}") from None
                await asyncio.sleep(next(retry))
                continue
            detail = f" ({outcome.result.error})" if outcome.result.error else ""
            log.info("task %s attempt %d: %s%s", task_id, attempt, state, detail)
            return

    def _drain(self) -> None:
        self._draining = True
