"""`stigmer top`: the daemon's runners and latest tasks, refreshed in place.

On a terminal it is a live dashboard (q or Ctrl-C leaves). Otherwise, or with
--once or --json, it prints one snapshot and exits, for scripts and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import runtime

# rich, grpc and the protos load when the command runs (see cli/main.py).
if TYPE_CHECKING:
    from rich.console import RenderableType

    from cli.client import DaemonClient
    from protos.daemon_service_pb2 import DaemonStatus
    from protos.runner_pb2 import Runner
    from protos.task_pb2 import Task

REFRESH_SECONDS = 0.5
# Each refresh's calls; a daemon slower than this shows as an error line.
CALL_TIMEOUT_SECONDS = 3.0
DEFAULT_TASKS = 15


def top(
    once: Annotated[
        bool, typer.Option("--once", help="Print one snapshot and exit (also when piped).")
    ] = False,
    tasks: Annotated[
        int, typer.Option("--tasks", "-n", min=1, max=1000, help="How many recent tasks to show.")
    ] = DEFAULT_TASKS,
    json: Annotated[
        bool, typer.Option("--json", help="One snapshot as JSON on stdout (implies --once).")
    ] = False,
) -> None:
    """Live view of the runners and the latest tasks (q or Ctrl-C leaves)."""
    runtime.run(_top(once or json, tasks, json))


@dataclass
class Snapshot:
    status: DaemonStatus | None = None
    runners: list[Runner] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    # Why the last refresh failed; what is shown is then from the one before.
    error: str = ""


async def fetch(client: DaemonClient, limit: int) -> Snapshot:
    """Status, runners and the newest tasks, asked for at the same time."""
    from protos.daemon_service_pb2 import GetStatusRequest
    from protos.runner_service_pb2 import ListRunnersRequest
    from protos.task_service_pb2 import ListTasksRequest

    status, runners, tasks = await asyncio.gather(
        client.unary(
            client.daemon.GetStatus, GetStatusRequest(), deadline_seconds=CALL_TIMEOUT_SECONDS
        ),
        client.unary(
            client.runners.ListRunners,
            ListRunnersRequest(),
            deadline_seconds=CALL_TIMEOUT_SECONDS,
        ),
        client.unary(
            client.tasks.ListTasks,
            ListTasksRequest(page_size=limit),
            deadline_seconds=CALL_TIMEOUT_SECONDS,
        ),
    )
    return Snapshot(status, list(runners.runners), list(tasks.tasks)[:limit])


async def _top(once: bool, limit: int, as_json: bool) -> int:
    from cli.client import DaemonClient
    from cli.output import stdout_console

    async with DaemonClient() as client:
        snapshot = await fetch(client, limit)
        if once or not stdout_console().is_terminal:
            print_snapshot(snapshot, limit, as_json)
            return 0
        await _live(client, snapshot, limit)
    return 0


def summary(snapshot: Snapshot) -> str:
    """One line: the daemon, its runners and its tasks by state."""
    from cli.views import duration, state_label

    status = snapshot.status
    if status is None:
        return "daemon: no answer yet"
    counts = ", ".join(f"{state_label(c.state)} {c.count}" for c in status.task_counts if c.count)
    return (
        f"daemon pid {status.pid}, up {duration(status.uptime_seconds)}"
        f" · runners {status.runners_running}/{status.runners_total} running"
        f" · tasks: {counts or 'none'}"
    )


def print_snapshot(snapshot: Snapshot, limit: int, as_json: bool) -> None:
    from cli.output import out, print_json, print_table, to_dict
    from cli.views import (
        RUNNER_COLUMNS,
        TASK_COLUMNS,
        runner_row,
        runner_style,
        state_style,
        task_row,
    )

    if as_json:
        print_json(
            {
                "status": to_dict(snapshot.status) if snapshot.status is not None else None,
                "runners": [to_dict(r) for r in snapshot.runners],
                "tasks": [to_dict(t) for t in snapshot.tasks],
            }
        )
        return
    now = time.time()
    out(summary(snapshot))
    out("")
    out(f"RUNNERS ({len(snapshot.runners)})", style="bold")
    print_table(
        RUNNER_COLUMNS,
        [runner_row(r, now) for r in snapshot.runners],
        [runner_style(r.state) for r in snapshot.runners],
    )
    out("")
    out(f"TASKS (newest {limit})", style="bold")
    print_table(
        TASK_COLUMNS,
        [task_row(t, now) for t in snapshot.tasks],
        [state_style(t.state) for t in snapshot.tasks],
    )


def render(snapshot: Snapshot, limit: int, now: float) -> RenderableType:
    """The dashboard as one rich renderable."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cli.views import (
        RUNNER_COLUMNS,
        TASK_COLUMNS,
        runner_row,
        runner_style,
        state_style,
        task_row,
    )

    def table(
        title: str, columns: list[str], rows: list[list[str]], styles: list[str | None]
    ) -> Table:
        t = Table(
            title=title,
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            header_style="bold",
            expand=True,
        )
        for i, column in enumerate(columns):
            last = i == len(columns) - 1
            t.add_column(column, no_wrap=True, overflow="ellipsis", ratio=1 if last else None)
        for row, style in zip(rows, styles, strict=True):
            t.add_row(*row, style=style)
        return t

    header = Text(summary(snapshot), style="bold")
    header.append(f"   {time.strftime('%H:%M:%S', time.localtime(now))}", style="dim")
    parts: list[RenderableType] = [header]
    if snapshot.error:
        parts.append(Text(snapshot.error, style="red"))
    parts.append(
        table(
            f"Runners ({len(snapshot.runners)})",
            RUNNER_COLUMNS,
            [runner_row(r, now) for r in snapshot.runners],
            [runner_style(r.state) for r in snapshot.runners],
        )
    )
    parts.append(
        table(
            f"Tasks (newest {limit})",
            TASK_COLUMNS,
            [task_row(t, now) for t in snapshot.tasks],
            [state_style(t.state) for t in snapshot.tasks],
        )
    )
    parts.append(Text("q or Ctrl-C quits", style="dim"))
    return Group(*parts)


async def _refreshed(client: DaemonClient, limit: int, last: Snapshot) -> Snapshot:
    """A new snapshot; on failure the last one, with the reason, and a fresh channel
    so a daemon that comes back is found again."""
    from cli.errors import CliError

    try:
        return await fetch(client, limit)
    except CliError as e:
        with contextlib.suppress(CliError):
            await client.reconnect()
        return Snapshot(last.status, last.runners, last.tasks, e.message)


async def _live(client: DaemonClient, snapshot: Snapshot, limit: int) -> None:
    from rich.live import Live

    from cli.output import stdout_console

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    live = Live(
        render(snapshot, limit, time.time()),
        console=stdout_console(),
        screen=True,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )

    async def refresh() -> None:
        current = snapshot
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            current = await _refreshed(client, limit, current)
            live.update(render(current, limit, time.time()), refresh=True)

    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        with _QuitKey(loop, stop), live:
            worker = asyncio.create_task(refresh())
            worker.add_done_callback(lambda _: stop.set())
            await stop.wait()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    finally:
        loop.remove_signal_handler(signal.SIGINT)


class _QuitKey:
    """Reads single keys from a terminal's stdin (cbreak mode) and sets `stop` on q."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self._loop = loop
        self._stop = stop
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> _QuitKey:
        if not sys.stdin.isatty():
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        # cbreak keeps ISIG: Ctrl-C still raises SIGINT, which the caller handles.
        tty.setcbreak(fd)
        self._fd = fd
        self._loop.add_reader(fd, self._read)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        import termios

        self._loop.remove_reader(self._fd)
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64)
        except OSError:
            data = b""
        if not data:
            # End of input: no more keys will come; Ctrl-C still works.
            self._loop.remove_reader(self._fd)
            return
        if b"q" in data.lower():
            self._stop.set()
