"""Following a task's events, across a daemon restart, and printing them."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from enum import Enum

from cli.client import DaemonClient
from cli.errors import CliError, DaemonNotRunning, ExitCode
from cli.output import print_json_line, say, to_dict
from cli.views import event_line
from protos import event_pb2, task_service_pb2

# How long a broken watch keeps trying to reach the daemon again before giving up.
RECONNECT_GIVE_UP_SECONDS = 30.0


async def follow_task(
    client: DaemonClient, task_id: str, after_seq: int = 0
) -> AsyncGenerator[event_pb2.Event, None]:
    """The task's events after `after_seq`, up to and including `finished`.

    When the stream breaks it is opened again after the last seq seen, so
    nothing is missed or yielded twice.
    """
    last_seq = after_seq
    broken_since: float | None = None
    delay = 0.1
    while True:
        try:
            request = task_service_pb2.WatchTaskRequest(task_id=task_id, after_seq=last_seq)
            async with aclosing(client.stream(client.tasks.WatchTask, request)) as batches:
                async for batch in batches:
                    broken_since, delay = None, 0.1
                    for event in batch.events:
                        if event.seq and event.seq <= last_seq:
                            continue
                        last_seq = max(last_seq, event.seq)
                        yield event
                        if event.HasField("finished"):
                            return
        except DaemonNotRunning:
            pass
        except CliError as exc:
            if exc.reason == "CURSOR_TOO_OLD" and exc.metadata.get("first_seq", "").isdigit():
                first = int(exc.metadata["first_seq"])
                say(f"stigmer: events before #{first} were compacted away; following from there")
                last_seq = first - 1
                continue
            if exc.reason != "WATCHER_TOO_SLOW":
                raise
            continue  # closed for falling behind: resume at once from the last event seen
        # The stream broke, or ended before `finished` (a daemon shutting down).
        now = time.monotonic()
        if broken_since is None:
            broken_since = now
            say(f"stigmer: lost the daemon's event stream; reconnecting after #{last_seq}…")
        elif now - broken_since > RECONNECT_GIVE_UP_SECONDS:
            raise CliError(
                f"error: lost the connection to the daemon while watching {task_id} and could "
                f"not reconnect for {RECONNECT_GIVE_UP_SECONDS:.0f} s; resume with "
                f"`stigmer task watch {task_id} --after-seq {last_seq}`",
                ExitCode.DAEMON_NOT_RUNNING,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        try:
            await client.reconnect()
        except DaemonNotRunning:
            continue


class Render(Enum):
    OUTPUT = "output"  # the program's output only (stigmer run)
    EVENTS = "events"  # output, and a line on stderr per other event (task watch)
    JSON = "json"  # one JSON object per event on stdout


async def print_events(
    events: AsyncGenerator[event_pb2.Event, None], render: Render
) -> event_pb2.Finished | None:
    """Prints events as they come; returns the `finished` payload (None if none came)."""
    finished: event_pb2.Finished | None = None
    async with aclosing(events):
        async for event in events:
            kind = event.WhichOneof("payload")
            if kind == "finished":
                finished = event.finished
            if render is Render.JSON:
                print_json_line(to_dict(event))
                continue
            if kind == "log":
                _write_log(event.log)
            elif kind == "text_delta":
                sys.stdout.write(event.text_delta.text)
                sys.stdout.flush()
            elif render is Render.EVENTS:
                line = event_line(event)
                if line:
                    say(line, style="dim")
            elif kind == "retrying":
                r = event.retrying
                say(f"stigmer: attempt {r.failed_attempt} failed ({r.reason}); retrying")
    return finished


def _write_log(log: event_pb2.Log) -> None:
    stream = sys.stderr if log.stream == event_pb2.LOG_STREAM_STDERR else sys.stdout
    # Flush any text already written there so bytes never overtake it.
    stream.flush()
    stream.buffer.write(log.data)
    stream.buffer.flush()
