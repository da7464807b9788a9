"""`stigmer runner ...`: the runner subprocesses the daemon supervises."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime

# Command bodies import what they need (see cli/main.py).
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from cli.client import DaemonClient
    from protos.runner_pb2 import Runner
    from protos.runner_service_pb2 import LogChunk, TailRunnerLogRequest

app = typer.Typer(help="Inspect and control the daemon's runners.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
RunnerId = Annotated[
    str | None,
    typer.Argument(metavar="[ID]", help="The runner's id (runner-0, …).", show_default=False),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every runner.")]
DrainOption = Annotated[
    bool,
    typer.Option("--drain", help="Let a busy runner finish its task first (default: at once)."),
]

# Stopping waits out a runner's grace period (10 s by default) and starting waits
# for it to register, so actions get longer than the usual 10 s.
ACTION_TIMEOUT_SECONDS = 60.0
# `runner logs -n N` first reads this many bytes from the end, more if N lines need it.
TAIL_BYTES = 64 * 1024
_TAIL_BYTES_MAX = 16 * 1024 * 1024
MAX_RUNNERS = 64


@app.command("list")
def list_runners(json: JsonOption = False) -> None:
    """List the runners and what they are doing."""
    runtime.run(_list(json))


@app.command()
def start(runner_id: RunnerId = None, all: AllOption = False, json: JsonOption = False) -> None:
    """Start a stopped, exited or FATAL runner (a running one is left as it is)."""
    check_target(runner_id, all)
    runtime.run(_act("StartRunner", runner_id, all, False, json))


@app.command()
def stop(
    runner_id: RunnerId = None,
    all: AllOption = False,
    drain: DrainOption = False,
    json: JsonOption = False,
) -> None:
    """Stop runners (SIGTERM, then SIGKILL after the grace period); a busy runner's task
    is retried or failed by its retry policy unless --drain."""
    check_target(runner_id, all)
    runtime.run(_act("StopRunner", runner_id, all, drain, json))


@app.command()
def restart(
    runner_id: RunnerId = None,
    all: AllOption = False,
    drain: DrainOption = False,
    json: JsonOption = False,
) -> None:
    """Stop then start runners, with the same --drain rule as stop."""
    check_target(runner_id, all)
    runtime.run(_act("RestartRunner", runner_id, all, drain, json))


@app.command()
def scale(
    count: Annotated[
        int,
        typer.Argument(
            metavar="N",
            min=0,
            max=MAX_RUNNERS,
            help=f"How many runners there should be (0 to {MAX_RUNNERS}).",
            show_default=False,
        ),
    ],
    json: JsonOption = False,
) -> None:
    """Set how many runners run; scaling down stops idle runners first."""
    runtime.run(_scale(count, json))


@app.command()
def logs(
    runner_id: Annotated[
        str, typer.Argument(metavar="ID", help="The runner's id.", show_default=False)
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output (Ctrl-C ends).")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many lines to print first.")
    ] = 50,
) -> None:
    """Print the end of a runner's log (its stdout and stderr)."""
    try:
        runtime.run(_logs(runner_id, follow, lines))
    except KeyboardInterrupt:
        # Following ends only this way: a normal end, not a failure.
        return


def check_target(runner_id: str | None, all_runners: bool) -> None:
    """One runner id or --all: not both, not neither."""
    from cli.errors import UsageError

    if runner_id and all_runners:
        raise UsageError(f"give a runner id ({runner_id}) or --all, not both")
    if not runner_id and not all_runners:
        raise UsageError("give a runner id (see `stigmer runner list`) or --all")


def last_lines(data: bytes, count: int, from_start: bool) -> bytes:
    """The last `count` lines of `data`; its first line is dropped unless `data`
    starts at the beginning of the log (it may be cut)."""
    if count <= 0 or not data:
        return b""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    if not from_start:
        lines = lines[1:]
    return b"".join(lines[-count:])


def print_runners(runners: Sequence[Runner], as_json: bool) -> None:
    import time

    from cli.output import print_json, print_table, to_dict
    from cli.views import RUNNER_COLUMNS, runner_row, runner_style

    if as_json:
        print_json([to_dict(r) for r in runners])
        return
    now = time.time()
    print_table(
        RUNNER_COLUMNS,
        [runner_row(r, now) for r in runners],
        [runner_style(r.state) for r in runners],
    )


async def _list(as_json: bool) -> int:
    from cli.client import DaemonClient
    from protos.runner_service_pb2 import ListRunnersRequest

    async with DaemonClient() as client:
        response = await client.unary(client.runners.ListRunners, ListRunnersRequest())
    print_runners(response.runners, as_json)
    return 0


_DONE = {"StartRunner": "started", "StopRunner": "stopped", "RestartRunner": "restarted"}


async def _act(
    method: str, runner_id: str | None, all_runners: bool, drain: bool, as_json: bool
) -> int:
    from cli.client import DaemonClient
    from cli.output import say
    from protos.runner_service_pb2 import RunnerRequest

    request = RunnerRequest(runner_id=runner_id or "", all=all_runners, drain=drain)
    async with DaemonClient() as client:
        call = getattr(client.runners, method)
        response = await client.unary(call, request, deadline_seconds=ACTION_TIMEOUT_SECONDS)
    ids = ", ".join(r.id for r in response.runners) or "no runners"
    verb = _DONE[method]
    if drain and method != "StartRunner":
        verb += " (busy ones after their task)"
    say(f"{verb}: {ids}")
    print_runners(response.runners, as_json)
    return 0


async def _scale(count: int, as_json: bool) -> int:
    from cli.client import DaemonClient
    from cli.output import say
    from protos.runner_service_pb2 import ScaleRunnersRequest

    async with DaemonClient() as client:
        response = await client.unary(
            client.runners.ScaleRunners,
            ScaleRunnersRequest(count=count),
            deadline_seconds=ACTION_TIMEOUT_SECONDS,
        )
    say(f"scaled to {count} runner{'s' if count != 1 else ''}")
    print_runners(response.runners, as_json)
    return 0


async def _logs(runner_id: str, follow: bool, lines: int) -> int:
    import asyncio
    import signal

    from cli.client import DaemonClient

    async with DaemonClient() as client:
        end = await _print_tail(client, runner_id, lines)
        if not follow:
            return 0
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        following = asyncio.create_task(_follow(client, runner_id, end))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            for task in (following, stopping):
                task.cancel()
            await asyncio.gather(following, stopping, return_exceptions=True)
        if following.done() and not following.cancelled():
            error = following.exception()
            if error is not None:
                raise error
    return 0


async def _read_from(
    client: DaemonClient, runner_id: str, offset: int
) -> tuple[int | None, bytes, int | None]:
    """The log from `offset` to its current end: (offset of the first byte, bytes, end)."""
    from protos.runner_service_pb2 import TailRunnerLogRequest

    first: int | None = None
    end: int | None = None
    parts: list[bytes] = []
    request = TailRunnerLogRequest(runner_id=runner_id, offset=offset, follow=False)
    async for chunk in _tail(client, request):
        if first is None:
            first = chunk.offset
        parts.append(chunk.data)
        end = chunk.offset + len(chunk.data)
    return first, b"".join(parts), end


async def _print_tail(client: DaemonClient, runner_id: str, lines: int) -> int:
    """Prints the last `lines` lines; returns the log offset to follow from."""
    import sys

    wanted = TAIL_BYTES
    while True:
        first, data, end = await _read_from(client, runner_id, -wanted)
        # Less than asked: the daemon gave all it keeps (a negative offset is clamped).
        everything = first is None or end is None or end - first < wanted
        if everything or data.count(b"\n") > lines or wanted >= _TAIL_BYTES_MAX:
            break
        wanted *= 4
    complete = not first  # from byte 0: the first line is whole
    sys.stdout.buffer.write(last_lines(data, lines, from_start=complete))
    sys.stdout.buffer.flush()
    # Nothing read: what the log keeps was empty, so whatever it holds by the time
    # the follow starts is new (a negative offset, as the start may not be 0).
    return end if end is not None else -wanted


async def _follow(client: DaemonClient, runner_id: str, offset: int) -> None:
    import sys

    from protos.runner_service_pb2 import TailRunnerLogRequest

    request = TailRunnerLogRequest(runner_id=runner_id, offset=offset, follow=True)
    async for chunk in _tail(client, request):
        sys.stdout.buffer.write(chunk.data)
        sys.stdout.buffer.flush()


async def _tail(client: DaemonClient, request: TailRunnerLogRequest) -> AsyncIterator[LogChunk]:
    """TailRunnerLog's chunks, with OUT_OF_RANGE said plainly."""
    from cli.errors import CliError, ExitCode

    try:
        async for chunk in client.stream(client.runners.TailRunnerLog, request):
            yield chunk
    except CliError as e:
        if e.rpc_code != "OUT_OF_RANGE":
            raise
        where = (
            f"its last {-request.offset} bytes" if request.offset < 0 else f"byte {request.offset}"
        )
        details = e.message.removeprefix("error: ")
        raise CliError(
            f"error: cannot read {request.runner_id}'s log from {where}: {details} (rotated "
            f"away or not there); run `stigmer runner logs {request.runner_id}` again to read "
            "what is kept",
            ExitCode.USAGE,
        ) from None
