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
    from protos.task_pb2 import AgentSpec, PolicyLevel, Task, TaskSpec, Workspace

# The daemon takes at most 10 attempts in all (task.proto, RetryPolicy).
MAX_RETRIES = 9


def run(
    argv: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PROMPT | -- ARGV...",
            help="What the agent should do (one quoted argument), or with --cmd the program "
            "and its arguments after `--`.",
            show_default=False,
        ),
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
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="Run in a fresh clone of this repository (a URL or a local path) "
            "instead of a directory.",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", help="With --repo: the branch or tag to check out.", show_default=False
        ),
    ] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option(
            "--skill", help="Agent: a skill to offer by name; repeatable.", show_default=False
        ),
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            "-l",
            help="Agent: how much it may do without asking: student (read-only), intern "
            "(asks for every write or command), supervised (its allow-list runs, the rest "
            "asks) or autonomous (everything not denied runs) (default: the daemon's).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Agent: the model (default: the daemon's).", show_default=False
        ),
    ] = None,
    max_turns: Annotated[
        int | None,
        typer.Option(
            "--max-turns",
            min=1,
            help="Agent: at most this many model round trips.",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            metavar="USD",
            help="Agent: stop when the estimated cost reaches this many dollars.",
            show_default=False,
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="RULE",
            help="Agent: a rule that runs without asking, e.g. 'bash(git status:*)'; repeatable.",
            show_default=False,
        ),
    ] = None,
    ask: Annotated[
        list[str] | None,
        typer.Option(
            "--ask",
            metavar="RULE",
            help="Agent: a rule that asks first; repeatable.",
            show_default=False,
        ),
    ] = None,
    deny: Annotated[
        list[str] | None,
        typer.Option(
            "--deny",
            metavar="RULE",
            help="Agent: a rule that is always refused, e.g. 'bash(git push:*)'; repeatable.",
            show_default=False,
        ),
    ] = None,
    approval_timeout: Annotated[
        float | None,
        typer.Option(
            "--approval-timeout",
            min=0,
            metavar="SECONDS",
            help="Agent: how long an approval waits for an answer before it is "
            "denied (default: the daemon's).",
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
            help="Seconds before the program is killed, or the agent stopped "
            "(default: the daemon's).",
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
    """Run an agent (or with --cmd a program) here and stream what it does.

    Examples: stigmer run "fix the failing test"; stigmer run --cmd -- make test

    Agent runs exit 0 (succeeded), 1 (failed), 124 (timed out) or 130 (interrupted).

    Programs exit with their own exit code.
    """
    where = choose_workspace(workspace, repo, branch)
    if cmd:
        _no_agent_options(
            skill=skill,
            level=level,
            model=model,
            max_turns=max_turns,
            max_cost=max_cost,
            allow=allow,
            ask=ask,
            deny=deny,
            approval_timeout=approval_timeout,
        )
        spec = build_spec(
            argv or [], cmd, workspace, cwd, env or [], timeout, retries, secret or []
        )
        if where is not None and where.HasField("git"):
            spec.workspace.CopyFrom(where)
        runtime.run(_run(spec, detach, json))
        return
    _no_command_options(cwd=cwd, env=env, secret=secret)
    agent = build_agent_spec(
        argv or [],
        skills=skill or [],
        level=level,
        model=model,
        max_turns=max_turns,
        max_cost=max_cost,
        allow=allow or [],
        ask=ask or [],
        deny=deny or [],
        approval_timeout=approval_timeout,
        timeout=timeout,
    )
    if retries > MAX_RETRIES:
        raise UsageError(f"--retries {retries}: at most {MAX_RETRIES}")
    spec = agent_task_spec(agent, where, retries)
    runtime.run(_run(spec, detach, json))


def _no_agent_options(**given: object) -> None:
    for name, value in given.items():
        if value:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} is for agent runs; it does not go with --cmd")


def _no_command_options(**given: object) -> None:
    for name, value in given.items():
        if value:
            raise UsageError(
                f"--{name} is for programs run with --cmd; an agent run does not take it"
            )


def choose_workspace(
    workspace: str | None, repo: str | None, branch: str | None
) -> Workspace | None:
    """`--workspace DIR` or `--repo URL [--branch B]` (None: neither was given)."""
    from protos.task_pb2 import GitSource, Workspace

    if workspace and repo:
        raise UsageError("--workspace and --repo: give one or the other")
    if branch and not repo:
        raise UsageError("--branch needs --repo (the repository to clone)")
    if repo:
        from cli.task_file import local_repo

        return Workspace(git=GitSource(url=local_repo(repo, Path.cwd()), branch=branch or ""))
    if workspace:
        root = Path(workspace).expanduser().absolute()
        return Workspace(path=os.path.normpath(root))
    return None


def parse_level(text: str) -> PolicyLevel.ValueType:
    from cli.task_file import LEVELS

    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise UsageError(f"--level {text!r}: expected one of {', '.join(LEVELS)}")
    return level


def build_agent_spec(
    args: list[str],
    *,
    skills: list[str] | None = None,
    level: str | None = None,
    model: str | None = None,
    max_turns: int | None = None,
    max_cost: float | None = None,
    allow: list[str] | None = None,
    ask: list[str] | None = None,
    deny: list[str] | None = None,
    approval_timeout: float | None = None,
    timeout: float | None = None,
) -> AgentSpec:
    """The agent part of `stigmer run "PROMPT" ...`, after the checks that need no daemon."""
    from protos.task_pb2 import AgentLimits, AgentSpec

    if not args:
        raise UsageError(
            'no prompt given: say what the agent should do, e.g. `stigmer run "fix the '
            'failing test"`, or run a program with `stigmer run --cmd -- PROGRAM [ARGS...]`'
        )
    if len(args) > 1:
        raise UsageError(
            f"{len(args)} arguments given: quote the prompt as one argument "
            f'(stigmer run "{" ".join(args)}"), or add --cmd to run a program '
            f"(stigmer run --cmd -- {' '.join(args)})"
        )
    prompt = args[0]
    if not prompt.strip():
        raise UsageError("the prompt is empty: say what the agent should do")
    agent = AgentSpec(
        prompt=prompt,
        skills=skills or [],
        model=model or "",
        allow_rules=allow or [],
        ask_rules=ask or [],
        deny_rules=deny or [],
        limits=AgentLimits(
            max_turns=max_turns or 0,
            max_cost_usd=max_cost or 0.0,
            max_wall_seconds=timeout or 0.0,
        ),
        approval_timeout_seconds=approval_timeout or 0.0,
    )
    if level is not None:
        agent.policy_level = parse_level(level)
    return agent


def agent_task_spec(agent: AgentSpec, where: Workspace | None, retries: int = 0) -> TaskSpec:
    """An agent task; like `--cmd`, it runs in the current directory unless told otherwise."""
    from protos.task_pb2 import RetryPolicy, TaskSpec, Workspace

    if where is None:
        where = Workspace(path=os.path.normpath(Path.cwd()))
    return TaskSpec(agent=agent, workspace=where, retry=RetryPolicy(max_attempts=retries + 1))


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
        raise UsageError("a command task needs --cmd; `stigmer run PROMPT` runs an agent")
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
        if spec.HasField("agent"):
            from cli.agent_run import attach_agent

            return await attach_agent(client, task, as_json)
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
