"""`stigmer task ...`: list, inspect, watch, cancel, approve and submit tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime

if TYPE_CHECKING:
    from protos.task_pb2 import TaskSpec, TaskState

# Command bodies import what they need: `stigmer task list` must stay fast.

app = typer.Typer(
    help="List, inspect, watch, cancel, approve and submit tasks.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
TaskId = Annotated[
    str, typer.Argument(metavar="TASK_ID", help="The task's id (t-…).", show_default=False)
]

# ListTasks answers at most this many per page.
_MAX_PAGE = 1000


@app.command("list")
def list_tasks(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            "-s",
            help="Only tasks in this state (queued, claimed, running, succeeded, failed, "
            "cancelled, timed_out); repeat for several.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many tasks, newest first.")
    ] = 50,
    json: JsonOption = False,
) -> None:
    """List tasks, newest first."""
    from cli.views import parse_state

    states = [parse_state(s) for s in state or []]
    runtime.run(_list(states, limit, json))


@app.command()
def get(task_id: TaskId, json: JsonOption = False) -> None:
    """Show one task."""
    runtime.run(_get(task_id, json))


@app.command()
def watch(
    task_id: TaskId,
    after_seq: Annotated[
        int,
        typer.Option("--after-seq", min=0, help="Only events after this seq (resume a watch)."),
    ] = 0,
    exit_status: Annotated[
        bool,
        typer.Option(
            "--exit-status", help="Exit with the task's exit code, as `stigmer run` does."
        ),
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event per line on stdout.")
    ] = False,
) -> None:
    """Print a task's output and events until it finishes."""
    runtime.run(_watch(task_id, after_seq, exit_status, json))


@app.command()
def cancel(task_id: TaskId, json: JsonOption = False) -> None:
    """Ask a task to stop (a finished task is left as it is)."""
    runtime.run(_cancel(task_id, json))


@app.command()
def approve(
    task_id: TaskId,
    approval_id: Annotated[
        str,
        typer.Argument(
            metavar="APPROVAL_ID",
            help="The approval's id, from the request (`stigmer run` prints it).",
            show_default=False,
        ),
    ],
    deny: Annotated[bool, typer.Option("--deny", help="Refuse the call instead.")] = False,
    always: Annotated[
        bool,
        typer.Option("--always", help="Also allow calls like this one for the rest of the task."),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", "-r", help="Why (the agent sees it when refused).", show_default=False
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Answer an agent's approval request: let the tool call run, or refuse it (--deny)."""
    from cli.errors import UsageError

    if deny and always:
        raise UsageError("--always goes with an approval; it does not go with --deny")
    runtime.run(_approve(task_id, approval_id, not deny, always, reason or "", json))


@app.command()
def submit(
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="The task file (YAML).", show_default=False),
    ],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the task id and return at once.")
    ] = False,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Run in this directory (wins over the file's `workspace`).",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="Run in a fresh clone of this repository (wins over the file's `repo`).",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option("--branch", help="With --repo: the branch or tag.", show_default=False),
    ] = None,
    json: Annotated[
        bool,
        typer.Option("--json", help="Print the task (detached) or its events (attached) as JSON."),
    ] = False,
) -> None:
    """Submit an agent task described by a task file and follow it, as `stigmer run` does.

    The file's fields: id, goal (required), description, applicable_skills,
    scope {allowed_write_globs, allowed_read_globs}, constraints {max_files_changed,
    max_diff_bytes, timeout_seconds, denylisted_commands}, level, model, workspace
    (relative to the file), repo, branch. The same id submitted again is the same task.
    """
    from cli.task_submit import load_task

    request_id, spec = load_task(file, workspace, repo, branch)
    runtime.run(_submit(request_id, spec, detach, json))


async def _list(states: list[TaskState.ValueType], limit: int, as_json: bool) -> int:
    import time

    from cli.client import DaemonClient
    from cli.output import print_json, print_table, to_dict
    from cli.views import TASK_COLUMNS, state_style, task_row
    from protos.task_pb2 import Task
    from protos.task_service_pb2 import ListTasksRequest

    tasks: list[Task] = []
    token = ""
    async with DaemonClient() as client:
        while len(tasks) < limit:
            request = ListTasksRequest(
                states=states,
                page_size=min(limit - len(tasks), _MAX_PAGE),
                page_token=token,
            )
            page = await client.unary(client.tasks.ListTasks, request)
            tasks.extend(page.tasks)
            token = page.next_page_token
            if not token or not page.tasks:
                break
    tasks = tasks[:limit]
    if as_json:
        print_json([to_dict(t) for t in tasks])
        return 0
    now = time.time()
    print_table(
        TASK_COLUMNS, [task_row(t, now) for t in tasks], [state_style(t.state) for t in tasks]
    )
    return 0


async def _get(task_id: str, as_json: bool) -> int:
    from cli.client import DaemonClient
    from cli.output import print_fields, print_json, to_dict
    from cli.views import task_fields
    from protos.task_service_pb2 import GetTaskRequest

    async with DaemonClient() as client:
        task = await client.unary(client.tasks.GetTask, GetTaskRequest(task_id=task_id))
    if as_json:
        print_json(to_dict(task))
    else:
        print_fields(task_fields(task))
    return 0


async def _watch(task_id: str, after_seq: int, exit_status: bool, as_json: bool) -> int:
    from cli.client import DaemonClient
    from cli.errors import CliError
    from cli.outcome import task_outcome
    from cli.output import say
    from cli.watch import Render, follow_task, print_events

    async with DaemonClient() as client:
        finished = await print_events(
            follow_task(client, task_id, after_seq), Render.JSON if as_json else Render.EVENTS
        )
    if finished is None:
        raise CliError(f"error: the event stream of {task_id} ended before the task finished")
    if not exit_status:
        return 0
    outcome = task_outcome(task_id, finished.state, finished.result)
    if outcome.message:
        say(f"stigmer: {outcome.message}")
    return outcome.exit_code


async def _cancel(task_id: str, as_json: bool) -> int:
    from cli.client import DaemonClient
    from cli.output import out, print_json, say, to_dict
    from cli.views import state_label
    from protos.task_service_pb2 import CancelTaskRequest

    async with DaemonClient() as client:
        task = await client.unary(
            client.tasks.CancelTask,
            CancelTaskRequest(task_id=task_id, reason="cancelled with `stigmer task cancel`"),
        )
    if as_json:
        print_json(to_dict(task))
        return 0
    out(task.id)
    state = state_label(task.state)
    if task.HasField("end_time") or state in ("succeeded", "failed", "cancelled", "timed_out"):
        say(f"task {task.id} has finished ({state})")
    else:
        say(f"cancel requested; task {task.id} is {state} and stops when its runner has ended it")
    return 0


async def _approve(
    task_id: str, approval_id: str, approve: bool, always: bool, reason: str, as_json: bool
) -> int:
    from cli.agent_run import answered_by
    from cli.client import DaemonClient
    from cli.output import print_json, say, to_dict
    from protos.task_service_pb2 import ApproveActionRequest

    async with DaemonClient() as client:
        response = await client.unary(
            client.tasks.ApproveAction,
            ApproveActionRequest(
                task_id=task_id,
                approval_id=approval_id,
                approve=approve,
                always=always,
                reason=reason,
                answered_by=answered_by(),
            ),
        )
    resolution = response.resolution
    if as_json:
        print_json(to_dict(resolution))
        return 0
    verb = "approved" if resolution.approved else "denied"
    extra = " (and calls like it, for the rest of the task)" if resolution.always else ""
    say(f"{verb} {resolution.approval_id or approval_id} of task {task_id}{extra}")
    return 0


async def _submit(request_id: str, spec: TaskSpec, detach: bool, as_json: bool) -> int:
    from cli.agent_run import attach_agent
    from cli.client import DaemonClient
    from cli.output import out, print_json, say, stderr_is_terminal, to_dict
    from cli.views import state_label
    from protos.task_pb2 import TASK_STATE_QUEUED
    from protos.task_service_pb2 import CreateTaskRequest

    async with DaemonClient() as client:
        task = await client.unary(
            client.tasks.CreateTask, CreateTaskRequest(spec=spec, request_id=request_id)
        )
        if detach:
            if as_json:
                print_json(to_dict(task))
            else:
                out(task.id)
            return 0
        if not as_json:
            if task.state != TASK_STATE_QUEUED or task.attempt:
                # The same id was submitted before: this is that task, followed from its start.
                say(f"task {task.id} (submitted before; {state_label(task.state)})", style="dim")
            elif stderr_is_terminal():
                say(f"task {task.id}", style="dim")
        return await attach_agent(client, task, as_json)
