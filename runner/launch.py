"""Where and with what environment a command task's program starts, and why it could not."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from protos import task_pb2

# The runner's own variables (its token above all) never reach a task.
RUNNER_ENV_PREFIX = "STIGMER_"
# Optional, set by the daemon: comma-separated names of variables it injected
# into the runner as secrets (a provider key), held back from task programs.
ENV_SECRET_NAMES = "STIGMER_SECRET_NAMES"


class LaunchError(Exception):
    """The program could not be started; the message is meant for the user."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    workspace: str


def prepare(
    task: task_pb2.Task, claim_env: Mapping[str, str], base_env: Mapping[str, str]
) -> Launch:
    """Creates the workspace if needed and works out cwd and environment."""
    spec = task.spec.command
    if not spec.argv:
        raise LaunchError("the command has an empty argv")
    workspace = task.workspace_path
    if not workspace or not os.path.isabs(workspace):
        raise LaunchError(f"the daemon gave no absolute workspace path (got {workspace!r})")
    try:
        Path(workspace).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LaunchError(f"cannot create workspace {workspace}: {exc.strerror or exc}") from None
    # join() keeps an absolute cwd as it is.
    cwd = os.path.join(workspace, spec.cwd) if spec.cwd else workspace
    if not os.path.isdir(cwd):
        raise LaunchError(f"working directory not found: {cwd}")
    env = task_environment(base_env, claim_env, spec.env)
    return Launch(list(spec.argv), cwd, env, workspace)


def task_environment(
    base: Mapping[str, str], claim_env: Mapping[str, str], spec_env: Mapping[str, str]
) -> dict[str, str]:
    """The runner's environment without its own or secret variables, plus the task's."""
    held_back = {name.strip() for name in base.get(ENV_SECRET_NAMES, "").split(",")}
    env = {
        name: value
        for name, value in base.items()
        if not name.startswith(RUNNER_ENV_PREFIX) and name not in held_back
    }
    env.update(claim_env)
    env.update(spec_env)
    return env


def spawn_error(exc: OSError, launch: Launch) -> str:
    """Says in a user's words why `launch` did not start."""
    program = launch.argv[0]
    if exc.filename == launch.cwd:
        reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
        return f"working directory {launch.cwd}: {reason}"
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        if os.sep in program:
            return f"program not found: {program}"
        return f"program not found: {program} (looked on PATH)"
    if isinstance(exc, PermissionError):
        return f"program not executable: {program}"
    return f"cannot start {program}: {exc.strerror or exc}"
