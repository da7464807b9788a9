"""Every path is confined to the workspace: `..`, absolute paths and symlinks that leave it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.tools import Constraints, ToolError, Workspace, globs, run_tool


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("top secret\n")
    return folder


@pytest.fixture
def workspace(tmp_path: Path, outside: Path) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True)
    (root / "a" / "inside.txt").write_text("inside text\n")
    (root / "etc").symlink_to("/etc")
    (root / "out").symlink_to(outside)
    (root / "secret_link.txt").symlink_to(outside / "secret.txt")
    (root / "inner_link.txt").symlink_to(root / "a" / "inside.txt")
    before = snapshot(outside)
    yield Workspace(root, Constraints(), {"PATH": os.defpath})
    assert snapshot(outside) == before, "something outside the workspace changed"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


ESCAPES = [
    "../x",
    "../outside/secret.txt",
    "/etc/passwd",
    "etc/passwd",  # a symlinked folder pointing to /etc
    "out/secret.txt",  # a symlinked folder pointing outside
    "out/new.txt",
    "secret_link.txt",  # a symlinked file pointing outside
    "a/../../x",
    "a/../../outside/secret.txt",
    "etc/../outside/secret.txt",  # `..` after a symlinked folder goes up from its target
]


def tool_inputs(path: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "pwned\n"}),
        ("edit_file", {"path": path, "old_string": "top", "new_string": "pwned"}),
        ("list_dir", {"path": path}),
        ("grep", {"pattern": "secret|root", "path": path}),
    ]


@pytest.mark.parametrize("path", ESCAPES)
async def test_paths_leaving_the_workspace_are_refused(workspace: Workspace, path: str) -> None:
    for name, tool_input in tool_inputs(path):
        result = await run_tool(name, tool_input, workspace)
        assert result.is_error, (name, path, result.output)
        assert path in result.output, (name, result.output)
        assert "outside the workspace" in result.output, (name, result.output)


async def test_the_error_names_the_symlink_target(workspace: Workspace, outside: Path) -> None:
    result = await run_tool("read_file", {"path": "out/secret.txt"}, workspace)
    assert result.output.startswith("out/secret.txt is outside the workspace")
    assert str((outside / "secret.txt").resolve()) in result.output


async def test_writing_through_an_outside_symlink_creates_nothing(
    workspace: Workspace, outside: Path
) -> None:
    result = await run_tool("write_file", {"path": "out/sub/new.txt", "content": "x"}, workspace)
    assert result.is_error
    assert not (outside / "sub").exists()
    assert workspace.files_changed == set()


async def test_absolute_paths_inside_are_allowed(workspace: Workspace) -> None:
    inside = workspace.given_root / "a" / "inside.txt"
    result = await run_tool("read_file", {"path": str(inside)}, workspace)
    assert result.output == "     1\tinside text"
    real = workspace.root / "a" / "new.txt"
    result = await run_tool("write_file", {"path": str(real), "content": "n"}, workspace)
    assert not result.is_error
    assert real.read_text() == "n"


async def test_dot_dot_that_stays_inside_is_fine(workspace: Workspace) -> None:
    result = await run_tool("read_file", {"path": "a/../a/./inside.txt"}, workspace)
    assert result.output == "     1\tinside text"


async def test_a_symlink_inside_the_workspace_is_followed(workspace: Workspace) -> None:
    result = await run_tool("read_file", {"path": "inner_link.txt"}, workspace)
    assert result.output == "     1\tinside text"
    result = await run_tool(
        "edit_file",
        {"path": "inner_link.txt", "old_string": "inside", "new_string": "edited"},
        workspace,
    )
    # The link's target is changed, and the link stays a link.
    assert result.changes[0].path == "a/inside.txt"
    assert (workspace.root / "inner_link.txt").is_symlink()
    assert (workspace.root / "a" / "inside.txt").read_text() == "edited text\n"


def test_resolve_rules(workspace: Workspace) -> None:
    root = workspace.root
    assert workspace.resolve(".", write=False) == root
    assert workspace.resolve("a/inside.txt", write=True) == root / "a" / "inside.txt"
    assert workspace.resolve("new/deep/file", write=True) == root / "new" / "deep" / "file"
    for bad in ("", "   ", "~/x", "~", "a\0b"):
        with pytest.raises(ToolError):
            workspace.resolve(bad, write=False)
    with pytest.raises(ToolError, match="outside the workspace"):
        workspace.resolve(str(root.parent), write=False)
    with pytest.raises(ToolError, match="outside the workspace"):
        workspace.resolve(str(root) + "-sibling/x", write=False)


def test_a_symlink_loop_is_an_error(workspace: Workspace) -> None:
    (workspace.root / "loop1").symlink_to(workspace.root / "loop2")
    (workspace.root / "loop2").symlink_to(workspace.root / "loop1")
    with pytest.raises(ToolError):
        workspace.resolve("loop1/x", write=True)


def test_a_workspace_reached_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-ws"
    real.mkdir()
    (real / "f.txt").write_text("f")
    link = tmp_path / "ws-link"
    link.symlink_to(real)
    workspace = Workspace(link, Constraints(), {})
    assert workspace.root == real
    assert workspace.resolve(str(link / "f.txt"), write=False) == real / "f.txt"
    assert workspace.resolve(str(real / "f.txt"), write=False) == real / "f.txt"
    assert workspace.resolve("f.txt", write=False) == real / "f.txt"


async def test_glob_never_leaves_the_workspace(workspace: Workspace) -> None:
    for pattern in ("../*", "../outside/*", "/etc/*", "a/../../*"):
        result = await run_tool("glob", {"pattern": pattern}, workspace)
        assert result.is_error, pattern
    result = await run_tool("glob", {"pattern": "**/*"}, workspace)
    # Symlinked folders are named, not walked; symlinks leaving the workspace are left out.
    assert result.output.splitlines() == ["a/", "a/inside.txt", "inner_link.txt"]
    result = await run_tool("glob", {"pattern": "out/*"}, workspace)
    assert result.is_error
    assert "outside the workspace" in result.output


async def test_grep_over_the_workspace_skips_what_leaves_it(workspace: Workspace) -> None:
    result = await run_tool("grep", {"pattern": "secret|text|root"}, workspace)
    assert result.output.splitlines() == [
        "a/inside.txt:1: inside text",
        "inner_link.txt:1: inside text",
    ]


async def test_list_dir_marks_links_leaving_the_workspace(workspace: Workspace) -> None:
    result = await run_tool("list_dir", {}, workspace)
    lines = result.output.splitlines()
    assert "etc -> /etc (outside the workspace: not usable)" in lines
    assert "secret_link.txt -> " in result.output


def test_write_globs(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path, Constraints(allowed_write_globs=("src/**", "*.md")), {})
    assert workspace.resolve("src/a/b.py", write=True) == tmp_path.resolve() / "src/a/b.py"
    assert workspace.resolve("README.md", write=True)
    with pytest.raises(ToolError, match=r"writing docs/x\.md is not allowed.*src/\*\*, \*\.md"):
        workspace.resolve("docs/x.md", write=True)
    # Reading is not limited by the write globs.
    assert workspace.resolve("docs/x.md", write=False)


async def test_read_globs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("needle\n")
    (tmp_path / "private.txt").write_text("needle\n")
    (tmp_path / "src" / "sneaky.py").symlink_to(tmp_path / "private.txt")
    workspace = Workspace(tmp_path, Constraints(allowed_read_globs=("src/**",)), {})
    assert not (await run_tool("read_file", {"path": "src/a.py"}, workspace)).is_error
    result = await run_tool("read_file", {"path": "private.txt"}, workspace)
    assert result.is_error
    assert "reading private.txt is not allowed" in result.output
    result = await run_tool("read_file", {"path": "src/sneaky.py"}, workspace)
    assert result.is_error
    result = await run_tool("grep", {"pattern": "needle"}, workspace)
    assert result.output == "src/a.py:1: needle"


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/**", "src/a/b/c.py", True),
        ("src/**", "src", True),
        ("src/**", "srcx/a", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "a/b/c.py", True),
        ("**/*.py", "a/b/c.pyc", False),
        ("*.py", "a.py", True),
        ("*.py", "a/b.py", False),
        ("src/*/x", "src/a/x", True),
        ("src/*/x", "src/a/b/x", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/**/b", "a/x/b", True),
        ("test_?.py", "test_1.py", True),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("./docs/*.md", "docs/x.md", True),
    ],
)
def test_glob_matching(pattern: str, path: str, matches: bool) -> None:
    assert globs.match(pattern, path) is matches
