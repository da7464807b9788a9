"""A task's workspace made ready before its program or agent starts: the folder
the daemon chose, or a git repository cloned into it."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from protos import task_pb2
from runner.procgroup import kill_group

CLONE_TIMEOUT_SECONDS = 600.0


class WorkspaceError(Exception):
    """The workspace could not be made; the message is meant for the user."""


async def prepare_workspace(task: task_pb2.Task, env: Mapping[str, str]) -> Path:
    """The task's workspace, created (and cloned into, for a git workspace).

    A retried attempt clones afresh: what an earlier attempt left is not trusted.
    `env` is the scrubbed environment (no secrets reach git's helpers)."""
    raw = task.workspace_path
    if not raw or not os.path.isabs(raw):
        raise WorkspaceError(f"the daemon gave no absolute workspace path (got {raw!r})")
    path = Path(raw)
    if not task.spec.workspace.HasField("git"):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace {path}: {exc.strerror or exc}") from None
        return path
    git = task.spec.workspace.git
    if path.exists():
        await asyncio.to_thread(shutil.rmtree, path, True)
    path.parent.mkdir(parents=True, exist_ok=True)
    branch = ["--branch", git.branch] if git.branch else []
    argv = ["git", "clone", "--quiet", *branch, "--", git.url, str(path)]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**env, "GIT_TERMINAL_PROMPT": "0"},
            start_new_session=True,
        )
    except FileNotFoundError:
        raise WorkspaceError("git is not installed: it is needed for a git workspace") from None
    try:
        _, err = await asyncio.wait_for(process.communicate(), CLONE_TIMEOUT_SECONDS)
    except TimeoutError:
        await kill_group(process.pid)
        raise WorkspaceError(
            f"git clone {git.url} took longer than {CLONE_TIMEOUT_SECONDS:g} s"
        ) from None
    except asyncio.CancelledError:
        await kill_group(process.pid)
        raise
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise WorkspaceError(f"git clone {git.url} failed: {' '.join(detail) or 'no message'}")
    return path
