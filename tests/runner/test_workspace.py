"""Workspaces made ready by the runner: folders, and git clones from a local repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from protos import task_pb2
from runner.workspace import WorkspaceError, prepare_workspace


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["sh", "-c", "echo one > a.txt && git add a.txt && git commit -qm one"],
        ["git", "checkout", "-q", "-b", "feature"],
        ["sh", "-c", "echo two > b.txt && git add b.txt && git commit -qm two"],
        ["git", "checkout", "-q", "main"],
    ):
        subprocess.run(argv, cwd=repo, env=env, check=True)
    return repo


def _task(path: Path, url: str = "", branch: str = "") -> task_pb2.Task:
    task = task_pb2.Task(id="t-1", workspace_path=str(path))
    if url:
        task.spec.workspace.git.url = url
        task.spec.workspace.git.branch = branch
    return task


async def test_a_plain_workspace_is_created(tmp_path: Path) -> None:
    path = await prepare_workspace(_task(tmp_path / "ws"), os.environ)
    assert path.is_dir()


async def test_a_branch_is_cloned_from_a_file_url(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    path = await prepare_workspace(_task(tmp_path / "ws", f"file://{repo}", "feature"), os.environ)
    assert (path / "b.txt").read_text() == "two\n"


async def test_a_retry_clones_afresh(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "leftover").write_text("from attempt 1")
    path = await prepare_workspace(_task(tmp_path / "ws", str(repo)), os.environ)
    assert (path / "a.txt").exists() and not (path / "leftover").exists()


async def test_a_failed_clone_says_why(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError) as caught:
        await prepare_workspace(_task(tmp_path / "ws", str(tmp_path / "nope")), os.environ)
    assert "git clone" in str(caught.value) and "failed" in str(caught.value)
