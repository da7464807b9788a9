"""`stigmer task ...`: list, inspect, watch and cancel tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime

if TYPE_CHECKING:
    from protos.task_pb2 import TaskState

# Command bodies import what they need: `stigmer task list` must stay fast.

app = typer.Typer(help="List, inspect, watch and cancel tasks.", no_args_is_help=True)

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
