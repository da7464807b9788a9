"""`stigmer local install-service --supervisord` under a real supervisord: the daemon
is SIGKILLed, supervisord brings it back, its runners come back, nothing is lost."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import stigmer, wait_until, write_config

pytestmark = pytest.mark.timeout(240)


def status(home: Path) -> dict[str, Any] | None:
    result = stigmer(home, "local", "status", "--json", timeout=20)
    if result.returncode != 0:
        return None
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def ended(process: psutil.Process) -> bool:
    """The process has ended (a zombie counts; psutil spots a reused pid)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def supervisord_conf(tmp: Path, program: Path) -> str:
    return f"""\
[unix_http_server]
file={tmp}/supervisor.sock

[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{tmp}/supervisor.sock

[include]
files = {program}
"""


async def test_supervisord_brings_a_killed_daemon_back(tmp_path: Path) -> None:
    supervisord = shutil.which("supervisord")
    if supervisord is None:
        pytest.skip("supervisord is not on PATH (Debian: apt-get install supervisor)")
    # A space in STIGMER_HOME checks the program section's quoting for real.
    home = tmp_path / "st home"
    write_config(home, '[daemon]\ntcp_address = ""\n')
    program = tmp_path / "stigmer.conf"
    installed = stigmer(home, "local", "install-service", "--supervisord", "--output", str(program))
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == f"{program}\n"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(supervisord_conf(tmp_path, program))

    # supervisord's own environment says nothing of STIGMER_HOME: the program
    # section must carry everything the daemon needs.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMER_", "XDG_"))}
    log = (tmp_path / "supervisord.out").open("wb")
    manager = subprocess.Popen(
        [supervisord, "-c", str(conf)],
        env=clean,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: list[psutil.Process] = []

    def remember(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                seen.append(psutil.Process(pid))

    def diagnostics() -> str:
        texts = []
        for name in ("supervisord.log", "supervisord.out"):
            path = tmp_path / name
            texts.append(f"--- {name}\n{path.read_text() if path.exists() else ''}")
        daemon_log = home / "state" / "logs" / "daemon.log"
        if daemon_log.exists():
            texts.append(f"--- daemon.log\n{daemon_log.read_text()[-4000:]}")
        return "\n".join(texts)

    async def all_running(not_pid: int = 0) -> dict[str, Any] | None:
        if manager.poll() is not None:
            raise AssertionError(f"supervisord exited {manager.returncode}:\n{diagnostics()}")
        got = status(home)
        if got is None or got["pid"] == not_pid:
            return None
        if got["runners_total"] and got["runners_running"] == got["runners_total"]:
            return got
        return None

    def runner_pids() -> list[int]:
        result = stigmer(home, "runner", "list", "--json")
        assert result.returncode == 0, result.stderr
        return [r["pid"] for r in json.loads(result.stdout) if r["pid"]]

    def task_state(task_id: str) -> str:
        result = stigmer(home, "task", "get", task_id, "--json")
        return str(json.loads(result.stdout)["state"]) if result.returncode == 0 else ""

    try:
        try:
            first = await wait_until(all_running, 60, "supervisord to start the daemon")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{diagnostics()}") from None
        remember([first["pid"]])

        detached = stigmer(home, "run", "--cmd", "--detach", "--", "sh", "-c", "echo before")
        assert detached.returncode == 0, detached.stderr
        task_id = detached.stdout.strip()
        await wait_until(
            lambda: task_state(task_id) == "TASK_STATE_SUCCEEDED", 30, "the task to succeed"
        )

        old_runners = runner_pids()
        assert old_runners
        remember(old_runners)
        old_daemon = psutil.Process(first["pid"])
        # It is supervisord's child, run from our program section.
        assert old_daemon.ppid() == manager.pid
        os.kill(first["pid"], signal.SIGKILL)

        second = await wait_until(
            lambda: all_running(not_pid=first["pid"]), 60, "supervisord to restart the daemon"
        )
        remember([second["pid"]])
        assert psutil.Process(second["pid"]).ppid() == manager.pid
        assert second["runners_total"] == first["runners_total"]
        await wait_until(lambda: ended(old_daemon), 10, "the killed daemon to be reaped")
        old = [p for p in seen if p.pid in old_runners]
        await wait_until(lambda: all(ended(p) for p in old), 15, "the old runners to end")
        remember(runner_pids())

        # The earlier task and every one of its events outlived the kill.
        assert task_state(task_id) == "TASK_STATE_SUCCEEDED"
        watched = stigmer(home, "task", "watch", task_id, "--json")
        assert watched.returncode == 0, watched.stderr
        events = [json.loads(line) for line in watched.stdout.splitlines()]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert "finished" in events[-1]
        output = b"".join(base64.b64decode(e["log"]["data"]) for e in events if "log" in e)
        assert output == b"before\n"

        # And the restarted daemon runs new work.
        after = stigmer(home, "run", "--cmd", "--", "sh", "-c", "echo after")
        assert (after.returncode, after.stdout) == (0, "after\n"), after.stderr

        manager.send_signal(signal.SIGTERM)
        manager.wait(60)
        await wait_until(
            lambda: all(ended(p) for p in seen), 15, "the daemon and its runners to end"
        )
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait()
        log.close()
        for process in seen:
            if not ended(process):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
