"""Command tasks end to end: a real daemon, real runners, real gRPC."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import grpc
import psutil
import pytest

from protos import event_pb2, runner_pb2, runner_service_pb2, task_pb2, task_service_pb2
from tests.support import Client, Daemon, gone, output_of, processes_with, wait_until

S = task_pb2


def kinds(events: list[event_pb2.Event]) -> list[str]:
    return [e.WhichOneof("payload") or "" for e in events]


def finished(events: list[event_pb2.Event]) -> event_pb2.Finished:
    assert kinds(events)[-1] == "finished"
    return events[-1].finished


async def test_output_and_exit_code(daemon: Daemon, tmp_path: Path) -> None:
    client = await daemon.start()
    script = "import sys; print('out line'); print('err line', file=sys.stderr); sys.exit(3)"
    task = await client.create([sys.executable, "-c", script])
    events = await client.events(task.id)
    assert kinds(events)[:3] == ["queued", "claimed", "started"]
    assert output_of(events, event_pb2.LOG_STREAM_STDOUT) == b"out line\n"
    assert output_of(events, event_pb2.LOG_STREAM_STDERR) == b"err line\n"
    end = finished(events)
    assert end.state == S.TASK_STATE_FAILED
    assert end.result.has_exit_code and end.result.exit_code == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    stored = await client.get(task.id)
    assert stored.state == S.TASK_STATE_FAILED and stored.result.exit_code == 3
    assert stored.last_seq == events[-1].seq


async def test_workspace_cwd_and_env(daemon: Daemon, tmp_path: Path) -> None:
    client = await daemon.start()
    (tmp_path / "sub").mkdir()
    task = await client.create(
        ["sh", "-c", 'pwd; echo "$GREETING"; echo "${STIGMER_RUNNER_TOKEN:-no token}"'],
        cwd="sub",
        env={"GREETING": "hello"},
        workspace=task_pb2.Workspace(path=str(tmp_path)),
    )
    events = await client.events(task.id)
    assert output_of(events).decode().splitlines() == [str(tmp_path / "sub"), "hello", "no token"]
    assert finished(events).state == S.TASK_STATE_SUCCEEDED


async def test_fresh_workspace_is_made_under_the_state_dir(daemon: Daemon) -> None:
    client = await daemon.start()
    task = await client.create(["pwd"])
    events = await client.events(task.id)
    workspace = output_of(events).decode().strip()
    assert workspace == str(daemon.paths.workspaces_dir / task.id)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED


async def test_missing_program_fails_with_a_clear_error(daemon: Daemon) -> None:
    client = await daemon.start()
    task = await client.create(["no-such-program-xyz"])
    end = finished(await client.events(task.id))
    assert end.state == S.TASK_STATE_FAILED
    assert not end.result.has_exit_code
    assert "no-such-program-xyz" in end.result.error


async def test_watch_resumes_without_gap_or_duplicate(daemon: Daemon) -> None:
    client = await daemon.start()
    script = "import sys, time\nfor i in range(400):\n    print(i, flush=True); time.sleep(0.002)"
    task = await client.create([sys.executable, "-c", script])
    seen: list[event_pb2.Event] = []
    last = 0
    # Disconnect after every few batches and resume from the last seq received.
    while not seen or kinds(seen)[-1] != "finished":
        channel = grpc.aio.insecure_channel(f"unix://{daemon.paths.socket}")
        stub = Client(channel, client.token).tasks
        call = stub.WatchTask(
            task_service_pb2.WatchTaskRequest(task_id=task.id, after_seq=last), metadata=client.md
        )
        batches = 0
        async for batch in call:
            seen.extend(batch.events)
            last = seen[-1].seq
            batches += 1
            if batches == 3:
                call.cancel()
                break
        await channel.close(None)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    lines = output_of(seen).decode().split()
    assert lines == [str(i) for i in range(400)]


async def test_cancel_kills_the_whole_process_group(daemon: Daemon) -> None:
    client = await daemon.start()
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    # A child and a grandchild, both sleeping: cancel must end both.
    task = await client.create(["sh", "-c", f"sleep {marker} & sleep {marker}; wait"])
    await wait_until(lambda: len(processes_with("sleep", marker)) == 2, what="both sleeps")
    await client.tasks.CancelTask(
        task_service_pb2.CancelTaskRequest(task_id=task.id), metadata=client.md
    )
    end = finished(await client.events(task.id))
    assert end.state == S.TASK_STATE_CANCELLED
    await wait_until(lambda: not processes_with("sleep", marker), what="no sleep left")


async def test_timeout_ends_timed_out(daemon: Daemon) -> None:
    client = await daemon.start()
    task = await client.create(["sleep", "30"], timeout_seconds=0.5)
    end = finished(await client.events(task.id))
    assert end.state == S.TASK_STATE_TIMED_OUT
    assert "timed out" in end.result.error


async def test_runner_killed_mid_task_fails_the_task_with_the_reason(daemon: Daemon) -> None:
    client = await daemon.start()
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.25"
    task = await client.create(["sh", "-c", f"echo begun; sleep {marker}"])
    running = await wait_until(lambda: _running(client, task.id), what="the task to run")
    runner_pid = next(r.pid for r in (await _runners(client)) if r.id == running.runner_id)
    os.kill(runner_pid, signal.SIGKILL)
    end = finished(await client.events(task.id))
    assert end.state == S.TASK_STATE_FAILED
    assert f"runner {running.runner_id}" in end.result.error and "SIGKILL" in end.result.error
    # Its program does not outlive it, and the runner comes back.
    await wait_until(lambda: not processes_with("sleep", marker), what="the task's program to end")
    await wait_until(lambda: _all_running(client), what="the runner to be restarted and registered")


async def test_killed_runner_task_is_retried_when_policy_allows(daemon: Daemon) -> None:
    client = await daemon.start()
    flag = daemon.home / "second-attempt"
    script = f"if [ -e {flag} ]; then echo second; else touch {flag}; sleep 60; fi"
    task = await client.create(["sh", "-c", script], retry=task_pb2.RetryPolicy(max_attempts=2))
    running = await wait_until(lambda: _running(client, task.id), what="the task to run")
    await wait_until(flag.exists, what="the first attempt to start")
    runner_pid = next(r.pid for r in (await _runners(client)) if r.id == running.runner_id)
    os.kill(runner_pid, signal.SIGKILL)
    events = await client.events(task.id)
    assert "retrying" in kinds(events)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    assert events[-1].attempt == 2
    assert output_of(events).strip() == b"second"


async def test_daemon_sigkill_then_restart_settles_the_task(daemon: Daemon) -> None:
    client = await daemon.start()
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.75"
    task = await client.create(["sleep", marker])
    await wait_until(lambda: _running(client, task.id), what="the task to run")
    runners = daemon.runner_pids()
    daemon.kill()
    # Runners and their programs die with the daemon.
    await wait_until(lambda: all(gone(p) for p in runners), what="runners to die")
    await wait_until(lambda: not processes_with("sleep", marker), what="the program to die")
    for channel in daemon.channels:
        await channel.close(None)
    client = await daemon.start()
    after = await client.get(task.id)
    assert after.state == S.TASK_STATE_FAILED
    assert "daemon stopped" in after.result.error
    assert kinds(await client.events(task.id))[-1] == "finished"
    # And it works again.
    again = await client.create(["echo", "back"])
    assert output_of(await client.events(again.id)) == b"back\n"


async def test_runner_token_is_refused_on_client_services(daemon: Daemon) -> None:
    client = await daemon.start()
    pid = daemon.runner_pids()[0]
    environ = psutil.Process(pid).environ()
    token = environ["STIGMER_RUNNER_TOKEN"]
    assert token not in " ".join(psutil.Process(pid).cmdline())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_clean_shutdown_removes_socket_and_pid_file(daemon: Daemon) -> None:
    await daemon.start()
    runners = daemon.runner_pids()
    assert daemon.stop() == 0
    assert not daemon.paths.socket.exists()
    assert not daemon.paths.pid_file.exists()
    assert all(gone(p) for p in runners)


async def _runners(client: Client) -> list[runner_pb2.Runner]:
    answer = await client.runners.ListRunners(
        runner_service_pb2.ListRunnersRequest(), metadata=client.md
    )
    return list(answer.runners)


async def _all_running(client: Client) -> bool:
    status = await client.status()
    return status.runners_running == status.runners_total


async def _running(client: Client, task_id: str) -> task_pb2.Task | None:
    task = await client.get(task_id)
    return task if task.state == S.TASK_STATE_RUNNING else None


async def test_a_background_child_does_not_hold_up_the_end(daemon: Daemon) -> None:
    client = await daemon.start()
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.125"
    task = await client.create(["sh", "-c", f"sleep {marker} & echo done"])
    events = await client.events(task.id)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    assert output_of(events) == b"done\n"
    # What the program left behind in its group is ended with it.
    await wait_until(
        lambda: not processes_with("sleep", marker), what="the background sleep to end"
    )


async def test_death_by_signal_is_described(daemon: Daemon) -> None:
    client = await daemon.start()
    end = finished(await client.events((await client.create(["sh", "-c", "kill -9 $$"])).id))
    assert end.state == S.TASK_STATE_FAILED
    assert end.result.exit_code == -9 and end.result.error == "killed by signal 9 (SIGKILL)"


async def test_stdin_is_closed(daemon: Daemon) -> None:
    client = await daemon.start()
    task = await client.create([sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"])
    events = await client.events(task.id)
    assert output_of(events) == b"''\n"
    assert finished(events).state == S.TASK_STATE_SUCCEEDED


async def test_large_output_arrives_whole_and_in_order(daemon: Daemon) -> None:
    client = await daemon.start()
    script = "import sys\nfor i in range(50000):\n    sys.stdout.write(f'{i}\\n')\n"
    task = await client.create([sys.executable, "-c", script])
    events = await client.events(task.id)
    assert output_of(events) == "".join(f"{i}\n" for i in range(50000)).encode()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_git_workspace_is_cloned_for_the_task(daemon: Daemon, tmp_path: Path) -> None:
    import subprocess as sp

    repo = tmp_path / "repo"
    repo.mkdir()
    ident = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    script = "git init -q -b main && echo hello > README && git add README && git commit -qm init"
    sp.run(["sh", "-c", script], cwd=repo, env={**os.environ, **ident}, check=True)
    client = await daemon.start()
    spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["cat", "README"]))
    spec.workspace.git.url = f"file://{repo}"
    task = await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec), metadata=client.md
    )
    events = await client.events(task.id)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    assert output_of(events) == b"hello\n"
    spec.workspace.git.url = str(tmp_path / "no-such-repo")
    bad = await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec), metadata=client.md
    )
    end = finished(await client.events(bad.id))
    assert end.state == S.TASK_STATE_FAILED and "git clone" in end.result.error
