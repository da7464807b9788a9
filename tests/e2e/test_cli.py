"""The installed `stigmer` command against a real daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    STIGMER,
    Daemon,
    env_for,
    gone,
    processes_with,
    stigmer,
    wait_until,
    write_config,
)

NOT_RUNNING = "daemon not running: start it with `stigmer local start`\n"


@pytest.fixture
def started(home: Path) -> Iterator[Path]:
    """A daemon started the way a user starts it, and stopped whatever the test did."""
    result = stigmer(home, "local", "start")
    assert result.returncode == 0, result.stderr
    try:
        yield home
    finally:
        stigmer(home, "local", "stop")
        pid_file = home / "run" / "stigmer.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_start_status_stop(started: Path) -> None:
    status = stigmer(started, "local", "status", "--json")
    assert status.returncode == 0
    data = json.loads(status.stdout)
    pid = data["pid"]
    assert data["runners_running"] == data["runners_total"] == 2
    # A second start finds it running and changes nothing.
    again = stigmer(started, "local", "start")
    assert again.returncode == 0 and str(pid) in again.stdout + again.stderr
    assert json.loads(stigmer(started, "local", "status", "--json").stdout)["pid"] == pid
    # A second daemon in the foreground is refused.
    second = stigmer(started, "daemon", "run")
    assert second.returncode == 2 and "already running" in second.stderr
    stopped = stigmer(started, "local", "stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stderr
    assert gone(pid)
    down = stigmer(started, "local", "status")
    assert (down.returncode, down.stdout, down.stderr) == (3, "", NOT_RUNNING)


def test_run_streams_output_and_exits_with_the_task_code(started: Path, tmp_path: Path) -> None:
    result = stigmer(
        started,
        "run",
        "--cmd",
        "--workspace",
        str(tmp_path),
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 7",
    )
    assert result.returncode == 7
    assert result.stdout == "to-out\n"
    assert "to-err\n" in result.stderr


def test_detach_list_get_and_cancel_as_json(started: Path) -> None:
    detached = stigmer(started, "run", "--cmd", "--detach", "--", "sleep", "600")
    assert detached.returncode == 0
    task_id = detached.stdout.strip()
    assert task_id.startswith("t-") and "\n" not in task_id
    listed = json.loads(stigmer(started, "task", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [task_id]
    cancelled = stigmer(started, "task", "cancel", task_id, "--json")
    assert cancelled.returncode == 0
    json.loads(cancelled.stdout)

    def ended() -> bool:
        got = json.loads(stigmer(started, "task", "get", task_id, "--json").stdout)
        return bool(got["state"] == "TASK_STATE_CANCELLED")

    import asyncio

    asyncio.run(wait_until(ended, 20, "the task to be cancelled"))
    watched = stigmer(started, "task", "watch", task_id, "--json")
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "finished" in events[-1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "--cmd", "--cwd", "/no/such/dir", "--", "true"), "spec.command.cwd"),
        (("run", "--cmd", "--workspace", "/no/such/dir", "--", "true"), "workspace"),
        (("task", "get", "t-000000000000"), "no task with id"),
        (("task", "cancel", "t-000000000000"), "no task with id"),
    ],
)
def test_bad_input_is_one_clear_line(started: Path, args: tuple[str, ...], needle: str) -> None:
    result = stigmer(started, *args)
    assert result.returncode in (1, 2)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def run_attached(home: Path, marker: str) -> subprocess.Popen[str]:
    """`stigmer run` of a long sleep, returned once the task's first output arrived."""
    cli = subprocess.Popen(
        [STIGMER, "run", "--cmd", "--", "sh", "-c", f"echo begun; sleep {marker}"],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert cli.stdout is not None
    first = cli.stdout.readline()
    if first != "begun\n":
        cli.kill()
        raise AssertionError(f"unexpected first output {first!r}: {cli.communicate()[1]}")
    return cli


def test_ctrl_c_cancels_the_task(started: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    cli = run_attached(started, marker)
    try:
        cli.send_signal(signal.SIGINT)
        cli.wait(30)
        assert cli.returncode == 130
        import asyncio

        asyncio.run(wait_until(lambda: not processes_with("sleep", marker), 20, "sleep to end"))
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


async def test_run_survives_a_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.start()
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    cli = run_attached(daemon.home, marker)
    try:
        daemon.kill()
        for channel in daemon.channels:
            await channel.close(None)
        await daemon.start()
        out, err = cli.communicate(timeout=60)
        # The output came once; the reconnected watch reports how the task ended.
        assert out == ""
        assert cli.returncode == 1
        assert "daemon stopped while the task was running" in err
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_start_with_a_bad_config_says_why(home: Path) -> None:
    (home / "config" / "config.toml").write_text(
        "[runners]\ncount = 100\n[secrets]\nrequired = []\n"
    )
    result = stigmer(home, "local", "start")
    assert result.returncode == 1
    assert "runners.count = 100 is not allowed" in result.stderr
    assert "Traceback" not in result.stderr


async def test_watch_of_a_compacted_task_follows_what_is_kept(daemon: Daemon, home: Path) -> None:
    write_config(
        home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
        "[events]\nmax_per_task = 3\n",
    )
    client = await daemon.start()
    task = await client.create(
        ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.01; done"]
    )
    await client.events(task.id)
    for channel in daemon.channels:
        await channel.close(None)
    daemon.stop()
    await daemon.start()  # compaction runs at start
    result = stigmer(home, "task", "watch", task.id)
    assert result.returncode == 0, result.stderr
    assert "compacted away" in result.stderr
    assert "line1" not in result.stdout
