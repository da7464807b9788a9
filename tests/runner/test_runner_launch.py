"""Workspace, cwd and environment of a command task, and why a start failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from protos import task_pb2
from runner.launch import Launch, LaunchError, prepare, spawn_error, task_environment


def command_task(
    workspace: Path, cwd: str = "", argv: tuple[str, ...] = ("true",)
) -> task_pb2.Task:
    spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=list(argv), cwd=cwd))
    return task_pb2.Task(id="t-000000000001", spec=spec, workspace_path=str(workspace))


def test_environment_drops_runner_variables_and_named_secrets() -> None:
    base = {
        "PATH": "/bin",
        "STIGMER_RUNNER_TOKEN": "secret-token",
        "STIGMER_DAEMON_ADDRESS": "unix:///x",
        "STIGMER_SECRET_NAMES": "ANTHROPIC_API_KEY, OTHER",
        "ANTHROPIC_API_KEY": "sk-123",
        "KEEP": "1",
    }
    env = task_environment(base, {"FROM_CLAIM": "c", "KEEP": "2"}, {"FROM_SPEC": "s", "KEEP": "3"})
    assert env == {"PATH": "/bin", "KEEP": "3", "FROM_CLAIM": "c", "FROM_SPEC": "s"}


def test_creates_the_workspace_and_resolves_cwd(tmp_path: Path) -> None:
    workspace = tmp_path / "ws" / "deep"
    launch = prepare(command_task(workspace), {}, {})
    assert workspace.is_dir()
    assert launch.cwd == str(workspace)

    (workspace / "sub").mkdir()
    assert prepare(command_task(workspace, "sub"), {}, {}).cwd == str(workspace / "sub")
    assert prepare(command_task(workspace, str(tmp_path)), {}, {}).cwd == str(tmp_path)


def test_a_missing_cwd_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"working directory not found: .*/nope"):
        prepare(command_task(tmp_path, "nope"), {}, {})


def test_spawn_errors_in_words(tmp_path: Path) -> None:
    launch = Launch(["foo"], str(tmp_path), {}, str(tmp_path))
    assert spawn_error(FileNotFoundError(2, "x", "foo"), launch) == (
        "program not found: foo (looked on PATH)"
    )
    local = Launch(["./foo"], str(tmp_path), {}, str(tmp_path))
    assert spawn_error(FileNotFoundError(2, "x", "./foo"), local) == "program not found: ./foo"
    assert spawn_error(PermissionError(13, "x", "foo"), launch) == "program not executable: foo"
    gone = FileNotFoundError(2, "No such file or directory", str(tmp_path))
    assert spawn_error(gone, launch) == f"working directory {tmp_path}: not found"
