"""Service definitions that keep the daemon running: a systemd user unit and a
supervisord program section (`stigmer local install-service`).

Rendering is pure (paths and environment in, text out) so it is tested without
systemd or supervisord; `install` and `uninstall` do the file work.
"""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cli.errors import CliError, ExitCode, UsageError
from shared.paths import Paths

UNIT_NAME = "stigmer.service"
PROGRAM_NAME = "stigmer"
SUPERVISORD_FILE = "supervisord-stigmer.conf"
# How long the service manager waits for the daemon to stop (it stops its runners
# in parallel under its own deadline, a runner's grace period being 10 s).
STOP_WAIT_SECONDS = 30
# The daemon's exit code when another daemon holds its pid file: restarting will not help.
EXIT_LOCKED = 2
# Variables that decide where the daemon keeps its files and its socket; passed on
# when set, so the service's daemon uses the same folders as this shell's `stigmer`
# (a system supervisord has none of them, a systemd user manager maybe not all).
XDG_VARIABLES = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")


class Manager(Enum):
    SYSTEMD = "systemd"
    SUPERVISORD = "supervisord"


@dataclass(frozen=True)
class ServiceSpec:
    """What a service definition needs to know."""

    stigmer: Path  # the console script, absolute
    log_file: Path  # where the daemon's output goes
    environment: Mapping[str, str]  # variables set for the daemon
    user: str = ""  # supervisord: the account to run as (empty: supervisord's own)


def stigmer_script() -> Path:
    """The `stigmer` console script of this installation (next to its Python).

    sys.executable is not resolved: in a virtual environment it is a symlink, and
    the script lives beside the link, not beside the interpreter it points to.
    """
    script = Path(sys.executable).absolute().parent / "stigmer"
    if not script.is_file():
        raise CliError(
            f"error: cannot find the `stigmer` script next to {sys.executable} "
            f"(looked for {script}); reinstall stigmer-local"
        )
    return script


def service_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables to set for the daemon: those that move its files, made absolute."""
    home = env.get("STIGMER_HOME", "")
    if home:
        # Everything lives under it; the XDG variables no longer matter.
        return {"STIGMER_HOME": str(Path(home).absolute())}
    # XDG: relative values are invalid and ignored (shared.paths does the same).
    return {name: env[name] for name in XDG_VARIABLES if env.get(name) and os.path.isabs(env[name])}


def default_path(manager: Manager, paths: Paths, env: Mapping[str, str]) -> Path:
    """Where the definition goes when --output is not given."""
    if manager is Manager.SUPERVISORD:
        return paths.config_dir / SUPERVISORD_FILE
    base = env.get("XDG_CONFIG_HOME", "")
    config_home = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return config_home / "systemd" / "user" / UNIT_NAME


def spec_for(manager: Manager, paths: Paths, env: Mapping[str, str]) -> ServiceSpec:
    environment = service_environment(env)
    user = ""
    if manager is Manager.SUPERVISORD:
        # A system supervisord runs as root: `user=` runs the daemon as this user,
        # but changes neither HOME nor anything else in the environment, and the
        # daemon needs HOME (default paths, the keyring).
        user = getpass.getuser()
        environment = {"HOME": str(Path.home()), **environment}
    return ServiceSpec(
        stigmer=stigmer_script(),
        log_file=paths.daemon_log,
        environment=environment,
        user=user,
    )


# --- systemd -------------------------------------------------------------------


def _check_line(value: str, what: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise UsageError(f"{what} {value!r} holds a line break; it cannot go in a service file")


def _systemd_escape(value: str) -> str:
    """A value in double quotes for a unit file: `\\` and `"` escaped, `%` doubled
    (systemd specifiers)."""
    _check_line(value, "the value")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _systemd_exec_word(value: str) -> str:
    """One word of ExecStart=: quoted, with `$` doubled (systemd expands `$VAR` there)."""
    return _systemd_escape(value).replace("$", "$$")


def render_systemd(spec: ServiceSpec) -> str:
    _check_line(str(spec.log_file), "the log path")
    lines = [
        "# stigmer-local daemon as a systemd user service.",
        "# Written by `stigmer local install-service --systemd`; remove it with",
        "# `stigmer local uninstall-service --systemd`.",
        "[Unit]",
        "Description=stigmer-local daemon (runs agent and command tasks on this machine)",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={_systemd_exec_word(str(spec.stigmer))} daemon run",
    ]
    for name, value in sorted(spec.environment.items()):
        lines.append(f"Environment={_systemd_escape(f'{name}={value}')}")
    lines += [
        "Restart=on-failure",
        "RestartSec=1",
        f"# Exit code {EXIT_LOCKED}: another stigmer daemon runs already; restarting cannot help.",
        f"RestartPreventExitStatus={EXIT_LOCKED}",
        "# SIGTERM to the daemon only: it stops its runners itself (SIGTERM to each",
        "# runner's process group, a grace period, then SIGKILL). Whatever is left",
        "# when TimeoutStopSec runs out is killed with the whole unit.",
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_WAIT_SECONDS}",
        "# The daemon logs on stderr; keep it where `stigmer local logs` reads it.",
        f"StandardOutput=append:{str(spec.log_file).replace('%', '%%')}",
        "StandardError=inherit",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


# --- supervisord -----------------------------------------------------------------


def _supervisord_text(value: str) -> str:
    """supervisord expands `%(name)s` in its values: a literal `%` is written `%%`."""
    _check_line(value, "the value")
    return value.replace("%", "%%")


def _supervisord_env_value(value: str) -> str:
    # supervisord splits `KEY="v",KEY2="v2"` with a non-POSIX shlex: quotes keep
    # commas and spaces, but there is no escaping inside them.
    if '"' not in value:
        return f'"{_supervisord_text(value)}"'
    if "'" not in value:
        return f"'{_supervisord_text(value)}'"
    raise UsageError(f"{value!r} holds both kinds of quotes; supervisord cannot take it")


def render_supervisord(spec: ServiceSpec) -> str:
    command = shlex.join([str(spec.stigmer), "daemon", "run"])
    environment = ",".join(
        f"{name}={_supervisord_env_value(value)}"
        for name, value in sorted(spec.environment.items())
    )
    log = _supervisord_text(str(spec.log_file))
    lines = [
        "; stigmer-local daemon as a supervisord program.",
        "; Written by `stigmer local install-service --supervisord`; include it from",
        "; supervisord.conf with",
        ";   [include]",
        ";   files = <this file>",
        "; then run `supervisorctl reread && supervisorctl update`.",
        f"[program:{PROGRAM_NAME}]",
        f"command={_supervisord_text(command)}",
        "autostart=true",
        "autorestart=true",
        "startsecs=1",
        "stopsignal=TERM",
        f"stopwaitsecs={STOP_WAIT_SECONDS}",
        "; supervisord signals the daemon alone, never its process group: the daemon",
        "; stops its runners itself (SIGTERM to each runner's own process group, a",
        "; grace period, then SIGKILL), and runners die with the daemon even when it",
        "; is killed. Signalling the group would cut that orderly stop short.",
        "stopasgroup=false",
        "killasgroup=false",
    ]
    if spec.user:
        lines.append(f"user={_supervisord_text(spec.user)}")
    if environment:
        lines.append(f"environment={environment}")
    lines += [
        "redirect_stderr=true",
        f"stdout_logfile={log}",
        "",
    ]
    return "\n".join(lines)


def render(manager: Manager, spec: ServiceSpec) -> str:
    return render_systemd(spec) if manager is Manager.SYSTEMD else render_supervisord(spec)


# --- files -------------------------------------------------------------------------


def write(path: Path, text: str, force: bool) -> None:
    """Writes the file atomically; an existing one only with `force`."""
    if (path.exists() or path.is_symlink()) and not force:
        raise CliError(
            f"error: {path} already exists; pass --force to overwrite it", ExitCode.USAGE
        )
    if path.is_dir():
        raise CliError(f"error: {path} is a directory", ExitCode.USAGE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.tmp{os.getpid()}")
        scratch.write_text(text)
        scratch.chmod(0o644)
        os.replace(scratch, path)
    except OSError as e:
        raise CliError(f"error: cannot write {path}: {e.strerror or e}") from None


def remove(path: Path) -> bool:
    """Removes the file; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise CliError(f"error: {path} is a directory", ExitCode.USAGE) from None
    except OSError as e:
        raise CliError(f"error: cannot remove {path}: {e.strerror or e}") from None
    return True
