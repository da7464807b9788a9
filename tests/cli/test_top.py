"""`stigmer top`'s rendering, from hand-made messages (no daemon)."""

from __future__ import annotations

import time

from rich.console import Console

from cli.top import Snapshot, render, summary
from protos import daemon_service_pb2, runner_pb2, task_pb2


def snapshot() -> Snapshot:
    status = daemon_service_pb2.DaemonStatus(
        pid=42,
        uptime_seconds=125,
        runners_total=2,
        runners_running=1,
        task_counts=[
            daemon_service_pb2.TaskStateCount(state=task_pb2.TASK_STATE_RUNNING, count=1),
            daemon_service_pb2.TaskStateCount(state=task_pb2.TASK_STATE_FAILED, count=0),
            daemon_service_pb2.TaskStateCount(state=task_pb2.TASK_STATE_SUCCEEDED, count=7),
        ],
    )
    runners = [
        runner_pb2.Runner(
            id="runner-0",
            state=runner_pb2.RUNNER_STATE_RUNNING,
            pid=100,
            current_task_id="t-000000000001",
            cpu_percent=12.4,
            rss_bytes=40 * 1024 * 1024,
        ),
        runner_pb2.Runner(
            id="runner-1", state=runner_pb2.RUNNER_STATE_FATAL, reason="exited 5 times in 300 s"
        ),
    ]
    task = task_pb2.Task(
        id="t-000000000001",
        state=task_pb2.TASK_STATE_RUNNING,
        runner_id="runner-0",
        spec=task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["make", "test"])),
    )
    return Snapshot(status, runners, [task])


def test_summary_counts_only_what_there_is() -> None:
    assert summary(snapshot()) == (
        "daemon pid 42, up 2m05s · runners 1/2 running · tasks: running 1, succeeded 7"
    )
    assert summary(Snapshot()) == "daemon: no answer yet"


def test_render_shows_both_tables_and_the_error() -> None:
    shot = snapshot()
    shot.error = "error: the daemon did not answer in time"
    console = Console(width=140, color_system=None)
    with console.capture() as captured:
        console.print(render(shot, 15, time.time()))
    text = captured.get()
    assert "Runners (2)" in text and "Tasks (newest 15)" in text
    assert "runner-1" in text and "fatal" in text and "exited 5 times in 300 s" in text
    assert "12%" in text and "40.0MiB" in text
    assert "make test" in text
    assert "did not answer in time" in text
    assert "q or Ctrl-C quits" in text
