"""Starting the daemon in the background and waiting for it to come up or go away."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cli.client import DaemonClient
from cli.daemon_log import lines_since, size_of
from cli.errors import CliError
from cli.output import say, stderr_console
from protos import daemon_service_pb2
from shared.paths import Paths

if TYPE_CHECKING:
    from rich.status import Status

# The daemon's exit code when another daemon holds the pid file.
EXIT_LOCKED = 2
_POLL_SECONDS = 0.1
_LOG_LINES_ON_FAILURE = 20


class Progress:
    """A spinner on a terminal; plain lines on stderr otherwise (logs, CI)."""

    def __init__(self) -> None:
        self._status: Status | None = None
        self._last: str | None = None

    def __enter__(self) -> Progress:
        console = stderr_console()
        if console.is_terminal:
            self._status = console.status("")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def update(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self._status is not None:
            self._status.update(text)
        else:
            say(text)


async def probe(paths: Paths) -> daemon_service_pb2.DaemonStatus | None:
    """The daemon's status when it answers health checks with SERVING, else None."""
    try:
        async with DaemonClient(paths) as client:
            if not await client.serving(deadline_seconds=1.0):
                return None
            return await client.unary(
                client.daemon.GetStatus, daemon_service_pb2.GetStatusRequest(), deadline_seconds=2.0
            )
    except CliError:
        return None


def pid_from_file(paths: Paths) -> int | None:
    """The pid in the pid file, when that process is alive."""
    import psutil

    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and psutil.pid_exists(pid) else None


# Tells the daemon to read its secrets, one JSON object, from stdin at start.
SECRETS_ON_STDIN = "STIGMER_SECRETS_ON_STDIN"


def hand_over(
    environ: Mapping[str, str], secret_names: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The daemon's environment without the secrets, and the secrets it takes on stdin.

    Every name in `secret_names` leaves the environment (set or empty); those
    set to a value go into the JSON the daemon reads from its stdin."""
    env = dict(environ)
    secrets = {}
    for name in secret_names:
        value = env.pop(name, None)
        if value:
            secrets[name] = value
    env[SECRETS_ON_STDIN] = "1"
    return env, secrets


def spawn(paths: Paths, secret_names: Iterable[str] = ()) -> subprocess.Popen[bytes]:
    """`python -m daemon`, detached, its output appended to the daemon log.

    Secrets from our environment reach it on its stdin, never in its environment
    (which any process may read from /proc while it runs)."""
    paths.daemon_log.parent.mkdir(parents=True, exist_ok=True)
    env, secrets = hand_over(os.environ, secret_names)
    if env.get("STIGMER_HOME"):
        # The daemon runs from / (so a `daemon` folder in the user's cwd cannot
        # shadow ours), hence a relative STIGMER_HOME must be made absolute.
        env["STIGMER_HOME"] = str(Path(env["STIGMER_HOME"]).absolute())
    with paths.daemon_log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=env,
        )
    write_secrets(process, secrets)
    return process


def write_secrets(process: subprocess.Popen[bytes], secrets: Mapping[str, str]) -> None:
    """One JSON object on the child's stdin, then EOF. A child that died first
    (a broken pipe) is reported by the wait for it, not here."""
    import json

    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(dict(secrets)).encode())
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()


def _startup_failure(paths: Paths, code: int | None, log_offset: int) -> CliError:
    lines = lines_since(paths.daemon_log, log_offset, _LOG_LINES_ON_FAILURE)
    if lines:
        say(f"last lines of {paths.daemon_log}:")
        for line in lines:
            say("  " + line.decode(errors="replace").rstrip("\n"), style="dim")
    if code == EXIT_LOCKED:
        return CliError(
            f"error: another stigmer daemon holds {paths.pid_file}; "
            "see `stigmer local status`, or stop it with `stigmer local stop`"
        )
    how = f" with code {code}" if code is not None else ""
    return CliError(
        f"error: the daemon exited during startup{how}; see the log above or {paths.daemon_log}"
    )


async def wait_ready(
    paths: Paths,
    process: subprocess.Popen[bytes] | None,
    pid: int,
    wait_seconds: float,
    log_offset: int,
) -> daemon_service_pb2.DaemonStatus:
    """Waits until health says SERVING and every configured runner is RUNNING.

    `process` is the daemon we spawned (None when we wait for one someone else
    started); its early exit ends the wait with the tail of its log.
    """
    import psutil

    deadline = time.monotonic() + wait_seconds
    detail = "no answer on the socket yet"
    with Progress() as progress:
        progress.update(f"starting daemon (pid {pid})…")
        while True:
            if process is not None:
                code = process.poll()
                if code is not None:
                    raise _startup_failure(paths, code, log_offset)
            elif not psutil.pid_exists(pid):
                raise _startup_failure(paths, None, log_offset)
            status = await probe(paths)
            if status is not None:
                if status.runners_running >= status.runners_total:
                    return status
                counts = f"{status.runners_running}/{status.runners_total} running"
                detail = f"runners {counts}"
                progress.update(f"waiting for runners ({counts})…")
            if time.monotonic() >= deadline:
                raise CliError(
                    f"error: the daemon (pid {pid}) is not ready after {wait_seconds:g} s "
                    f"({detail}); it keeps starting in the background: see `stigmer local logs`"
                )
            await asyncio.sleep(_POLL_SECONDS)


async def wait_exit(pid: int, wait_seconds: float) -> bool:
    """True once process `pid` is gone (or a zombie), False after `wait_seconds`."""
    import psutil

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(_POLL_SECONDS)
    return False


def log_size(paths: Paths) -> int:
    return size_of(paths.daemon_log)
