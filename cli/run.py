"""`stigmer run`: submit a task and stay attached to it, as `docker run` does."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from cli.client import DaemonClient
    from protos.task_pb2 import Task, TaskSpec

# The daemon takes at most 10 attempts in all (task.proto, RetryPolicy).
MAX_RETRIES = 9


def run(
    argv: Annotated[
        list[str] | None,
        typer.Argument(help="The program and its arguments, after `--`.", show_default=False),
    ] = None,
    cmd: Annotated[
        bool, typer.Option("--cmd", help="Run a program (ARGV) instead of an agent.")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the task id and return at once.")
    ] = False,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Directory the task runs in [default: the current directory].",
            show_default=False,
        ),
    ] = None,
    cwd: Annotated[
        str | None,
        typer.Option(
            "--cwd", help="Working directory, relative to the workspace.", show_default=False
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="NAME=VALUE for the program; repeatable.", show_default=False
        ),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            "-s",
            help="NAME of a stored secret to put in the program's environment; repeatable.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0,
            help="Seconds before the program is killed [default: the daemon's].",
            show_default=False,
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Attempts after the first if its runner dies.")
    ] = 0,
    json: Annotated[
        bool,
        typer.Option("--json", help="Print the task (detached) or its events (attached) as JSON."),
    ] = False,
) -> None:
    """Run a task here and stream its output; exit with its exit code.

    Example: stigmer run --cmd -- make test
    """
    spec = build_spec(argv or [], cmd, workspace, cwd, env or [], timeout, retries, secret or [])
    runtime.run(_run(spec, detach, json))


def build_spec(
    argv: list[str],
    cmd: bool,
    workspace: str | None,
    cwd: str | None,
    env: list[str],
    timeout: float | None,
    retries: int,
    secrets: list[str] | None = None,
) -> TaskSpec:
    """The task spec, after the checks that need no daemon (the rest is the daemon's)."""
    from cli.run_args import parse_env, parse_secrets
    from protos.task_pb2 import CommandSpec, RetryPolicy, TaskSpec, Workspace

    if not cmd:
        raise UsageError(
            "agent tasks are not available yet; to run a program use "
            "`stigmer run --cmd -- PROGRAM [ARGS...]`"
        )
    if not argv:
        raise UsageError(
            "--cmd: no program given; put it and its arguments after `--`, "
            "for example `stigmer run --cmd -- make test`"
        )
    if retries > MAX_RETRIES:
        raise UsageError(f"--retries {retries}: at most {MAX_RETRIES}")
    command = CommandSpec(
        argv=argv, cwd=cwd or "", env=parse_env(env), secrets=parse_secrets(secrets or [])
    )
    if timeout is not None:
        command.timeout_seconds = timeout
    # Like running the program right here: the workspace is this directory.
    root = Path(workspace).expanduser().absolute() if workspace else Path.cwd()
    return TaskSpec(
        command=command,
        workspace=Workspace(path=os.path.normpath(root)),
        retry=RetryPolicy(max_attempts=retries + 1),
    )


async def _run(spec: TaskSpec, detach: bool, as_json: bool) -> int:
    import uuid

    from cli.client import DaemonClient
    from cli.output import out, print_json, say, stderr_is_terminal, to_dict
    from protos.task_service_pb2 import CreateTaskRequest

    async with DaemonClient() as client:
        task = await client.unary(
            client.tasks.CreateTask, CreateTaskRequest(spec=spec, request_id=str(uuid.uuid4()))
        )
        if detach:
            if as_json:
                print_json(to_dict(task))
            else:
                out(task.id)
            return 0
        if stderr_is_terminal() and not as_json:
            say(f"task {task.id}", style="dim")
        return await _attach(client, task, as_json)


async def _attach(client: DaemonClient, task: Task, as_json: bool) -> int:
    """Streams the task until it finishes; Ctrl-C cancels it, a second one stops waiting."""
    from cli.errors import CliError
    from cli.outcome import task_outcome
    from cli.output import say
    from cli.watch import Render, follow_task, print_events
    from protos.task_service_pb2 import CancelTaskRequest

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted = False
    pending: set[asyncio.Task[None]] = set()

    async def cancel() -> None:
        try:
            await client.unary(
                client.tasks.CancelTask,
                CancelTaskRequest(task_id=task.id, reason="interrupted (Ctrl-C) in `stigmer run`"),
            )
        except CliError as e:
            say(f"stigmer: could not cancel {task.id}: {e.message}")

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            if main is not None:
                main.cancel()
            return
        interrupted = True
        say(f"stigmer: cancelling task {task.id} (press Ctrl-C again to stop waiting)")
        job = loop.create_task(cancel())
        pending.add(job)
        job.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        finished = await print_events(
            follow_task(client, task.id), Render.JSON if as_json else Render.OUTPUT
        )
    except asyncio.CancelledError:
        say(f"stigmer: stopped waiting; the daemon goes on cancelling task {task.id}")
        return ExitCode.INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if finished is None:
        raise CliError(f"error: the event stream of {task.id} ended before the task finished")
    outcome = task_outcome(task.id, finished.state, finished.result)
    if outcome.message:
        say(f"stigmer: {outcome.message}")
    # The user asked it to stop: 130 as a shell would, even if it won the race.
    return ExitCode.INTERRUPTED if interrupted else outcome.exit_code
