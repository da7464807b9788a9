"""`stigmer runner ...` and `stigmer top` against a real daemon (RunnerService)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from protos import runner_pb2, runner_service_pb2, task_pb2
from tests.support import STIGMER, Client, Daemon, env_for, gone, stigmer, wait_until

RUNNING = "RUNNER_STATE_RUNNING"


def ok_json(home: Path, *args: str) -> Any:
    result = stigmer(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def runners(client: Client) -> dict[str, runner_pb2.Runner]:
    response = await client.runners.ListRunners(
        runner_service_pb2.ListRunnersRequest(), metadata=client.md
    )
    return {r.id: r for r in response.runners}


async def wait_all_running(client: Client, count: int, what: str) -> dict[str, runner_pb2.Runner]:
    async def ready() -> dict[str, runner_pb2.Runner] | None:
        found = await runners(client)
        good = len(found) == count and all(
            r.state == runner_pb2.RUNNER_STATE_RUNNING and r.pid for r in found.values()
        )
        return found if good else None

    found: dict[str, runner_pb2.Runner] = await wait_until(ready, 30, what)
    return found


async def test_list_as_json_and_table(daemon: Daemon) -> None:
    client = await daemon.start()
    await wait_all_running(client, 2, "two runners")
    listed = ok_json(daemon.home, "runner", "list")
    assert [r["id"] for r in listed] == ["runner-0", "runner-1"]
    for r in listed:
        assert r["state"] == RUNNING and r["pid"] > 0
        for key in ("restarts", "current_task_id", "cpu_percent", "rss_bytes", "start_time"):
            assert key in r
    table = stigmer(daemon.home, "runner", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "PID"]
    assert "CPU" in header and "MEM" in header and "UPTIME" in header
    assert [row.split()[:2] for row in rows] == [["runner-0", "running"], ["runner-1", "running"]]


async def test_stop_and_start_one_runner(daemon: Daemon) -> None:
    client = await daemon.start()
    before = await wait_all_running(client, 2, "two runners")
    old = before["runner-0"].pid

    stopped = ok_json(daemon.home, "runner", "stop", "runner-0")
    assert [r["id"] for r in stopped] == ["runner-0"]

    async def is_stopped() -> bool:
        r = (await runners(client))["runner-0"]
        return r.state == runner_pb2.RUNNER_STATE_STOPPED and r.pid == 0

    await wait_until(is_stopped, 30, "runner-0 to stop")
    await wait_until(lambda: gone(old), 10, "runner-0's process to end")
    # The other runner was left alone.
    assert (await runners(client))["runner-1"].pid == before["runner-1"].pid
    # Stopping a stopped runner is fine.
    assert stigmer(daemon.home, "runner", "stop", "runner-0").returncode == 0

    started = stigmer(daemon.home, "runner", "start", "runner-0")
    assert started.returncode == 0, started.stderr
    assert "runner-0" in started.stdout
    after = await wait_all_running(client, 2, "runner-0 to run again")
    assert after["runner-0"].pid not in (0, old)

    unknown = stigmer(daemon.home, "runner", "stop", "runner-99")
    assert unknown.returncode == 1 and "runner-99" in unknown.stderr


async def test_restart_all(daemon: Daemon) -> None:
    client = await daemon.start()
    before = await wait_all_running(client, 2, "two runners")
    restarted = ok_json(daemon.home, "runner", "restart", "--all")
    assert sorted(r["id"] for r in restarted) == ["runner-0", "runner-1"]

    async def all_new() -> bool:
        found = await runners(client)
        return all(
            r.state == runner_pb2.RUNNER_STATE_RUNNING and r.pid and r.pid != before[r.id].pid
            for r in found.values()
        )

    await wait_until(all_new, 30, "both runners to run with new processes")
    old_pids = [r.pid for r in before.values()]
    await wait_until(lambda: all(gone(pid) for pid in old_pids), 10, "the old runners to end")


async def test_restart_with_drain_lets_the_task_finish(daemon: Daemon, tmp_path: Path) -> None:
    client = await daemon.start()
    await wait_all_running(client, 2, "two runners")
    task = await client.create(["sh", "-c", "sleep 2; echo drained"])

    async def busy_runner() -> str:
        got = await client.get(task.id)
        return got.runner_id if got.state == task_pb2.TASK_STATE_RUNNING else ""

    runner_id = await wait_until(busy_runner, 20, "the task to run")
    result = stigmer(daemon.home, "runner", "restart", runner_id, "--drain")
    assert result.returncode == 0, result.stderr

    async def finished() -> bool:
        got = await client.get(task.id)
        return got.state == task_pb2.TASK_STATE_SUCCEEDED

    await wait_until(finished, 30, "the drained task to succeed")
    got = await client.get(task.id)
    assert got.attempt == 1
    await wait_all_running(client, 2, "the drained runner to come back")


async def test_scale_up_then_down(daemon: Daemon) -> None:
    client = await daemon.start()
    await wait_all_running(client, 2, "two runners")
    up = ok_json(daemon.home, "runner", "scale", "3")
    assert len(up) == 3
    three = await wait_all_running(client, 3, "three runners")
    assert (await client.status()).runners_total == 3

    down = stigmer(daemon.home, "runner", "scale", "1")
    assert down.returncode == 0, down.stderr
    one = await wait_all_running(client, 1, "one runner")
    (kept,) = one.values()
    dropped = [r.pid for r in three.values() if r.id != kept.id]
    await wait_until(lambda: all(gone(pid) for pid in dropped), 15, "the dropped runners to end")
    assert (await client.status()).runners_total == 1

    too_many = stigmer(daemon.home, "runner", "scale", "65")
    assert too_many.returncode == 2


async def test_logs_tail_and_follow(daemon: Daemon) -> None:
    client = await daemon.start()
    await wait_all_running(client, 2, "two runners")
    # A runner logs at least a line when it registers.
    full = stigmer(daemon.home, "runner", "logs", "runner-0", "-n", "1000")
    assert full.returncode == 0, full.stderr
    assert full.stdout.strip()
    last = stigmer(daemon.home, "runner", "logs", "runner-0", "-n", "1")
    assert last.returncode == 0
    assert last.stdout == full.stdout.splitlines(keepends=True)[-1]
    assert stigmer(daemon.home, "runner", "logs", "runner-0", "-n", "0").stdout == ""
    missing = stigmer(daemon.home, "runner", "logs", "runner-99")
    assert missing.returncode == 1 and "runner-99" in missing.stderr

    # -f prints what comes next (a restart logs again) and Ctrl-C ends it with 0.
    follower = subprocess.Popen(
        [STIGMER, "runner", "logs", "runner-0", "-f", "-n", "0"],
        env=env_for(daemon.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        before = (await runners(client))["runner-0"].pid
        assert stigmer(daemon.home, "runner", "restart", "runner-0").returncode == 0

        async def restarted() -> bool:
            r = (await runners(client))["runner-0"]
            return r.state == runner_pb2.RUNNER_STATE_RUNNING and r.pid not in (0, before)

        await wait_until(restarted, 30, "runner-0 to restart")
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=15)
        assert follower.returncode == 0, err
        assert out.strip(), "nothing followed"
        assert not full.stdout or out.decode() not in full.stdout
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


async def test_top_once_prints_both_tables(daemon: Daemon) -> None:
    client = await daemon.start()
    await wait_all_running(client, 2, "two runners")
    task = await client.create(["sh", "-c", "echo hi"])
    result = stigmer(daemon.home, "top", "--once")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("daemon pid ")
    assert "RUNNERS (2)" in lines and any(line.startswith("TASKS") for line in lines)
    assert "runner-0" in result.stdout and "runner-1" in result.stdout
    assert task.id in result.stdout
    # Piped, plain `top` prints one snapshot too and exits.
    piped = stigmer(daemon.home, "top", timeout=30)
    assert piped.returncode == 0 and "RUNNERS" in piped.stdout
    snapshot = ok_json(daemon.home, "top")
    assert daemon.process is not None
    assert snapshot["status"]["pid"] == daemon.process.pid
    assert len(snapshot["runners"]) == 2
    assert task.id in [t["id"] for t in snapshot["tasks"]]
