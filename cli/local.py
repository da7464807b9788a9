"""`stigmer local ...`: start, stop and inspect the daemon on this machine."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime

# Command bodies import what they need: every `stigmer` call builds this app,
# and most use only one command (see cli/main.py).
if TYPE_CHECKING:
    from pathlib import Path

    from cli import service
    from protos.daemon_service_pb2 import DaemonStatus
    from shared.paths import Paths

app = typer.Typer(
    help="Start, stop and inspect the local daemon.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
StartTimeout = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Seconds to wait for the daemon and its runners."),
]
StopTimeout = Annotated[
    float, typer.Option("--timeout", min=0, help="Seconds to wait for the daemon to exit.")
]


InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure-storage",
        help="Store a key asked for in a plaintext file (0600) instead of the OS keyring.",
    ),
]
VerifyOption = Annotated[
    bool,
    typer.Option("--verify", help="Check a key asked for with one cheap call to the API."),
]


@app.command()
def start(
    timeout: StartTimeout = 20.0,
    json: JsonOption = False,
    insecure_storage: InsecureOption = False,
    verify: VerifyOption = False,
) -> None:
    """Start the daemon in the background (does nothing if it is running).

    A required API key that is not set is asked for once (masked) and stored in
    the OS keyring; without a terminal that is exit code 4.
    """
    runtime.run(_start(timeout, json, insecure_storage, verify))


@app.command()
def stop(timeout: StopTimeout = 15.0) -> None:
    """Stop the daemon and its runners."""
    runtime.run(_stop(timeout))


@app.command()
def restart(
    timeout: StartTimeout = 20.0,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", min=0, help="Seconds to wait for it to exit.")
    ] = 15.0,
    json: JsonOption = False,
    insecure_storage: InsecureOption = False,
    verify: VerifyOption = False,
) -> None:
    """Stop the daemon if it runs, then start it."""
    runtime.run(_restart(stop_timeout, timeout, json, insecure_storage, verify))


@app.command()
def status(json: JsonOption = False) -> None:
    """Show the daemon's status (exit code 3 when it is not running)."""
    runtime.run(_status(json))


@app.command()
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing what is appended.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many lines to print first.")
    ] = 50,
) -> None:
    """Print the end of the daemon's log."""
    from cli.daemon_log import follow as follow_log
    from cli.daemon_log import size_of, tail_lines
    from cli.output import say
    from shared.paths import resolve

    path = resolve().daemon_log
    if path.exists():
        sys.stdout.buffer.write(b"".join(tail_lines(path, lines)))
        sys.stdout.buffer.flush()
    elif not follow:
        say(f"no daemon log yet ({path})")
        return
    if follow:
        try:
            follow_log(path, size_of(path))
        except KeyboardInterrupt:
            # Following ends only this way: a normal end, not a failure.
            return


SupervisordFlag = Annotated[
    bool, typer.Option("--supervisord", help="A supervisord [program:stigmer] section.")
]
SystemdFlag = Annotated[bool, typer.Option("--systemd", help="A systemd user unit.")]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="The file to write (default: the user unit folder for systemd, "
        "supervisord-stigmer.conf in the config dir for supervisord).",
        show_default=False,
    ),
]


@app.command("install-service")
def install_service(
    supervisord: SupervisordFlag = False,
    systemd: SystemdFlag = False,
    output: OutputOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a supervisord program or systemd user unit that keeps the daemon running."""
    import os

    from cli import service
    from cli.output import out, say
    from shared.paths import resolve

    manager = _manager(supervisord, systemd)
    paths = resolve()
    path = _service_path(manager, output)
    text = service.render(manager, service.spec_for(manager, paths, os.environ))
    service.write(path, text, force)
    # supervisord and systemd refuse to start a program whose log folder is missing.
    paths.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    out(str(path))
    say(f"wrote {path}")
    if manager is service.Manager.SYSTEMD:
        say("enable and start it with:")
        say("  systemctl --user daemon-reload && systemctl --user enable --now stigmer")
        say("(and `loginctl enable-linger` to keep it running while you are logged out)")
    else:
        say("include it from supervisord.conf:")
        say("  [include]")
        say(f"  files = {path}")
        say("then load it with: supervisorctl reread && supervisorctl update")
    _warn_if_running(paths)


@app.command("uninstall-service")
def uninstall_service(
    supervisord: SupervisordFlag = False,
    systemd: SystemdFlag = False,
    output: OutputOption = None,
) -> None:
    """Remove what install-service wrote (nothing to do is fine)."""
    from cli import service
    from cli.output import out, say

    manager = _manager(supervisord, systemd)
    path = _service_path(manager, output)
    if not service.remove(path):
        say(f"nothing to remove: {path} does not exist")
        return
    out(str(path))
    say(f"removed {path}")
    if manager is service.Manager.SYSTEMD:
        say("if it was enabled, stop it and forget it with:")
        say("  systemctl --user disable --now stigmer; systemctl --user daemon-reload")
    else:
        say("remove its [include] line if you added one, then let supervisord stop it with:")
        say("  supervisorctl reread && supervisorctl update")


def _manager(supervisord: bool, systemd: bool) -> service.Manager:
    from cli import service
    from cli.errors import UsageError

    if supervisord == systemd:
        raise UsageError("give one of --supervisord or --systemd")
    return service.Manager.SUPERVISORD if supervisord else service.Manager.SYSTEMD


def _service_path(manager: service.Manager, output: str | None) -> Path:
    import os
    from pathlib import Path

    from cli import service
    from shared.paths import resolve

    if output:
        return Path(output).expanduser().absolute()
    return service.default_path(manager, resolve(), os.environ)


def _warn_if_running(paths: Paths) -> None:
    from cli import launcher
    from cli.output import say

    pid = launcher.pid_from_file(paths)
    if pid is not None:
        say(
            f"note: a daemon runs now (pid {pid}); stop it with `stigmer local stop` before "
            "the service manager starts its own"
        )


def _show_status(status: DaemonStatus, as_json: bool) -> None:
    from cli.output import print_fields, print_json, to_dict
    from cli.views import status_fields

    if as_json:
        print_json(to_dict(status))
    else:
        print_fields(status_fields(status))


async def _status(as_json: bool) -> int:
    from cli.client import DaemonClient
    from protos.daemon_service_pb2 import GetStatusRequest

    async with DaemonClient() as client:
        status = await client.unary(client.daemon.GetStatus, GetStatusRequest())
    _show_status(status, as_json)
    return 0


async def _start(
    wait_seconds: float,
    as_json: bool,
    insecure: bool = False,
    check: bool = False,
    secret_names: list[str] | None = None,
) -> int:
    import os

    from cli import launcher
    from cli.output import say
    from cli.secrets import ensure_required
    from shared.paths import resolve

    paths = resolve()
    status = await launcher.probe(paths)
    if status is not None:
        say(f"daemon already running (pid {status.pid})")
        _show_status(status, as_json)
        return 0
    offset = launcher.log_size(paths)
    pid = launcher.pid_from_file(paths)
    process = None
    if pid is None:
        # Asked for before anything starts: Ctrl-C at the prompt leaves nothing behind.
        if secret_names is None:
            secret_names = await ensure_required(paths, os.environ, insecure=insecure, check=check)
        process = launcher.spawn(paths, secret_names)
        pid = process.pid
    else:
        say(f"a daemon (pid {pid}) is already starting; waiting for it")
    status = await launcher.wait_ready(paths, process, pid, wait_seconds, offset)
    say(f"daemon started (pid {status.pid})")
    _show_status(status, as_json)
    return 0


async def _stop(wait_seconds: float) -> int:
    from cli import launcher
    from cli.client import DaemonClient
    from cli.errors import CliError, DaemonNotRunning
    from cli.output import say
    from protos.daemon_service_pb2 import GetStatusRequest, ShutdownRequest
    from shared.paths import resolve

    paths = resolve()
    try:
        async with DaemonClient(paths) as client:
            status = await client.unary(client.daemon.GetStatus, GetStatusRequest())
            pid = status.pid or launcher.pid_from_file(paths)
            # It may close the connection as it goes; the wait below tells.
            with contextlib.suppress(DaemonNotRunning):
                await client.unary(client.daemon.Shutdown, ShutdownRequest())
    except DaemonNotRunning:
        say("daemon not running")
        return 0
    if pid:
        with launcher.Progress() as progress:
            progress.update(f"stopping daemon (pid {pid})…")
            stopped = await launcher.wait_exit(pid, wait_seconds)
        if not stopped:
            raise CliError(
                f"error: the daemon (pid {pid}) did not stop within {wait_seconds:g} s; "
                f"see `stigmer local logs`, or end it with `kill {pid}`"
            )
    say(f"stopped (pid {pid})" if pid else "stopped")
    return 0


async def _restart(
    stop_timeout: float, start_timeout: float, as_json: bool, insecure: bool, check: bool
) -> int:
    import os

    from cli.secrets import ensure_required
    from shared.paths import resolve

    # Keys first: without one (no terminal, Ctrl-C) the running daemon is left alone.
    secret_names = await ensure_required(resolve(), os.environ, insecure=insecure, check=check)
    await _stop(stop_timeout)
    return await _start(start_timeout, as_json, insecure, check, secret_names)
