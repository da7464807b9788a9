"""read_file, write_file (atomic), edit_file (one exact match), list_dir, and the task limits."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from runner.tools import Change, Constraints, ToolResult, Workspace, run_tool
from runner.tools import files as files_tool


def make_workspace(root: Path, constraints: Constraints | None = None) -> Workspace:
    return Workspace(root, constraints or Constraints(), {})


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return make_workspace(root)


async def call(workspace: Workspace, name: str, **tool_input: Any) -> ToolResult:
    return await run_tool(name, tool_input, workspace)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of an atomic write left behind."""
    return [path.name for path in folder.rglob("*.tmp")]


# --- read_file -------------------------------------------------------------------------------


async def test_read_numbers_lines(workspace: Workspace) -> None:
    (workspace.root / "f.txt").write_text("one\ntwo\r\n\nfour")
    result = await call(workspace, "read_file", path="f.txt")
    assert result.output == "     1\tone\n     2\ttwo\n     3\t\n     4\tfour"
    assert not result.is_error


async def test_read_a_range(workspace: Workspace) -> None:
    (workspace.root / "f.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    result = await call(workspace, "read_file", path="f.txt", offset=3, limit=2)
    assert result.output == (
        "     3\tline 3\n     4\tline 4\n[showing lines 3-4 of 10; read on with offset=5]"
    )
    result = await call(workspace, "read_file", path="f.txt", offset=9)
    assert result.output == (
        "     9\tline 9\n    10\tline 10\n[showing lines 9-10, the end of the file]"
    )
    result = await call(workspace, "read_file", path="f.txt", offset=11)
    assert result.is_error
    assert result.output == "offset 11 is past the end of f.txt, which has 10 lines"


async def test_read_shows_at_most_the_default_lines(workspace: Workspace) -> None:
    count = files_tool.DEFAULT_READ_LINES + 5
    (workspace.root / "f.txt").write_text("x\n" * count)
    result = await call(workspace, "read_file", path="f.txt")
    lines = result.output.splitlines()
    assert len(lines) == files_tool.DEFAULT_READ_LINES + 1
    assert lines[-1] == (
        f"[showing lines 1-{files_tool.DEFAULT_READ_LINES} of {count}; "
        f"read on with offset={files_tool.DEFAULT_READ_LINES + 1}]"
    )


async def test_read_is_bounded_in_bytes(workspace: Workspace) -> None:
    line = "y" * 999 + "\n"
    (workspace.root / "big.txt").write_text(line * 1000)  # ~1 MB
    result = await call(workspace, "read_file", path="big.txt", limit=1000)
    assert len(result.output.encode()) <= files_tool.MAX_READ_BYTES + 200
    *lines, note = result.output.splitlines()
    shown = len(lines)
    assert 200 < shown < 300
    assert note == f"[showing lines 1-{shown} of 1000; read on with offset={shown + 1}]"


async def test_read_cuts_a_very_long_line(workspace: Workspace) -> None:
    (workspace.root / "min.js").write_text("z" * 100_000 + "\nsecond\n")
    result = await call(workspace, "read_file", path="min.js")
    first, second = result.output.splitlines()
    assert first == "     1\t" + "z" * files_tool.MAX_LINE_CHARS + " [... line cut ...]"
    assert second == "     2\tsecond"


async def test_read_refuses_binary_files(workspace: Workspace) -> None:
    (workspace.root / "blob.bin").write_bytes(b"\x7fELF\x00\x01\x02" * 10)
    result = await call(workspace, "read_file", path="blob.bin")
    assert result.is_error
    assert result.output == "blob.bin is a binary file (70 bytes); read_file only shows text"


async def test_read_errors(workspace: Workspace) -> None:
    (workspace.root / "empty.txt").write_text("")
    (workspace.root / "folder").mkdir()
    os.mkfifo(workspace.root / "pipe")
    assert (
        await call(workspace, "read_file", path="empty.txt")
    ).output == "(empty file: empty.txt)"
    result = await call(workspace, "read_file", path="missing.txt")
    assert (result.is_error, result.output) == (True, "missing.txt: no such file")
    result = await call(workspace, "read_file", path="folder")
    assert result.is_error and "is a folder" in result.output
    result = await call(workspace, "read_file", path="pipe")  # would block forever if opened
    assert result.is_error and "not a regular file" in result.output


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({}, "read_file: field 'path' is required (a string)"),
        ({"path": ["f"]}, "read_file: field 'path' must be a string, not an array"),
        ({"path": "f", "offset": "2"}, "field 'offset' must be an integer, not a string"),
        ({"path": "f", "offset": 1.5}, "field 'offset' must be an integer, not a number"),
        ({"path": "f", "limit": True}, "field 'limit' must be an integer, not a boolean"),
        ({"path": "f", "offset": 0}, "field 'offset' must be at least 1, not 0"),
        ({"path": "f", "start_line": 3}, "read_file: unknown field 'start_line'"),
    ],
)
async def test_read_bad_input(
    workspace: Workspace, tool_input: dict[str, Any], message: str
) -> None:
    (workspace.root / "f").write_text("x\n")
    result = await run_tool("read_file", tool_input, workspace)
    assert result.is_error
    assert message in result.output


async def test_a_non_object_input_and_an_unknown_tool(workspace: Workspace) -> None:
    result = await run_tool("read_file", ["f"], workspace)  # type: ignore[arg-type]
    assert result.is_error and "the input must be an object" in result.output
    result = await run_tool("rm_rf", {}, workspace)
    assert result.is_error and "there is no tool named 'rm_rf'" in result.output


# --- write_file ------------------------------------------------------------------------------


async def test_write_creates_the_file_and_its_folders(workspace: Workspace) -> None:
    result = await call(workspace, "write_file", path="a/b/c.txt", content="héllo\n")
    assert result.output == "created a/b/c.txt (7 bytes)"
    assert result.changes == [Change("a/b/c.txt", "created", 7)]
    assert (workspace.root / "a" / "b" / "c.txt").read_text() == "héllo\n"
    assert workspace.files_changed == {"a/b/c.txt"}
    assert workspace.bytes_written == 7
    assert leftovers(workspace.root) == []


async def test_write_replaces_keeping_the_mode(workspace: Workspace) -> None:
    script = workspace.root / "run.sh"
    script.write_text("old\n")
    script.chmod(0o751)
    result = await call(workspace, "write_file", path="run.sh", content="#!/bin/sh\n")
    assert result.changes == [Change("run.sh", "modified", 10)]
    assert script.read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o751


async def test_a_new_file_gets_the_usual_mode(workspace: Workspace) -> None:
    await call(workspace, "write_file", path="new.txt", content="x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((workspace.root / "new.txt").stat().st_mode) == 0o666 & ~umask


async def test_write_errors(workspace: Workspace) -> None:
    (workspace.root / "folder").mkdir()
    (workspace.root / "file").write_text("")
    result = await call(workspace, "write_file", path="folder", content="x")
    assert result.is_error and "is a folder" in result.output
    result = await call(workspace, "write_file", path="file/inner.txt", content="x")
    assert result.is_error
    result = await call(workspace, "write_file", path="x.txt")
    assert result.is_error and "field 'content' is required" in result.output
    result = await call(workspace, "write_file", path="x.txt", content="\udc80")
    assert result.is_error and "cannot be written as UTF-8" in result.output
    assert workspace.files_changed == set()
    assert leftovers(workspace.root) == []


async def test_a_failed_write_leaves_the_old_file_whole(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = workspace.root / "keep.txt"
    target.write_text("original\n")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    result = await call(workspace, "write_file", path="keep.txt", content="new\n" * 1000)
    assert result.is_error
    assert result.output == "write_file failed: No space left on device"
    assert target.read_text() == "original\n"
    assert leftovers(workspace.root) == []
    assert workspace.files_changed == set() and workspace.bytes_written == 0


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "data.txt"
    versions = [b"a" * 1_000_000, b"b" * 1_500_000]
    files_tool.atomic_write(target, versions[0])
    seen: set[int] = set()
    bad: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            if data not in versions:
                bad.append(len(data))
            seen.add(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(30):
            files_tool.atomic_write(target, versions[round_ % 2])
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert target.read_bytes() == versions[1]
    assert leftovers(tmp_path) == []


# --- edit_file -------------------------------------------------------------------------------


async def test_edit_replaces_one_exact_match(workspace: Workspace) -> None:
    (workspace.root / "m.py").write_text("def f():\n    return 1\n\ndef g():\n    return 2\n")
    result = await call(
        workspace, "edit_file", path="m.py", old_string="return 2", new_string="return 20"
    )
    assert result.output == "edited m.py: replaced 1 occurrence (line 5)"
    assert result.changes == [Change("m.py", "modified", 46)]
    assert (workspace.root / "m.py").read_text() == (
        "def f():\n    return 1\n\ndef g():\n    return 20\n"
    )
    assert workspace.bytes_written == len("return 2") + len("return 20")
    assert leftovers(workspace.root) == []


async def test_edit_not_found(workspace: Workspace) -> None:
    (workspace.root / "m.py").write_text("a = 1\n")
    result = await call(workspace, "edit_file", path="m.py", old_string="b = 1", new_string="x")
    assert result.is_error
    assert result.output.startswith("old_string not found in m.py")
    assert (workspace.root / "m.py").read_text() == "a = 1\n"


async def test_edit_with_many_matches_says_how_many(workspace: Workspace) -> None:
    (workspace.root / "m.py").write_text("x = 1\nx = 1\nx = 1\n")
    result = await call(workspace, "edit_file", path="m.py", old_string="x = 1", new_string="y")
    assert result.is_error
    assert result.output == ("old_string matches 3 times in m.py; give more context or replace_all")
    assert (workspace.root / "m.py").read_text() == "x = 1\nx = 1\nx = 1\n"
    result = await call(
        workspace, "edit_file", path="m.py", old_string="x = 1", new_string="y", replace_all=True
    )
    assert result.output == "edited m.py: replaced 3 occurrences"
    assert (workspace.root / "m.py").read_text() == "y\ny\ny\n"


async def test_edit_a_file_with_windows_line_ends(workspace: Workspace) -> None:
    (workspace.root / "w.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    result = await call(
        workspace, "edit_file", path="w.txt", old_string="one\ntwo", new_string="1\n2"
    )
    assert not result.is_error, result.output
    assert (workspace.root / "w.txt").read_bytes() == b"1\r\n2\r\nthree\r\n"


async def test_edit_errors(workspace: Workspace) -> None:
    (workspace.root / "m.py").write_text("a\n")
    (workspace.root / "bin").write_bytes(b"\0\1\2")
    (workspace.root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    cases = [
        ({"path": "nope.py", "old_string": "a", "new_string": "b"}, "nope.py: no such file"),
        ({"path": "m.py", "old_string": "", "new_string": "b"}, "old_string is empty"),
        ({"path": "m.py", "old_string": "a", "new_string": "a"}, "are the same"),
        ({"path": "bin", "old_string": "a", "new_string": "b"}, "is a binary file"),
        ({"path": "latin1.txt", "old_string": "c", "new_string": "b"}, "is not UTF-8 text"),
        ({"path": "m.py", "old_string": "a"}, "field 'new_string' is required"),
        (
            {"path": "m.py", "old_string": "a", "new_string": "b", "replace_all": "yes"},
            "field 'replace_all' must be true or false, not a string",
        ),
    ]
    for tool_input, message in cases:
        result = await run_tool("edit_file", tool_input, workspace)
        assert result.is_error, tool_input
        assert message in result.output, (tool_input, result.output)
    assert workspace.files_changed == set()


# --- the task's limits -----------------------------------------------------------------------


async def test_max_files_changed(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, Constraints(max_files_changed=2))
    assert not (await call(workspace, "write_file", path="a", content="1")).is_error
    assert not (await call(workspace, "write_file", path="b", content="2")).is_error
    # The same files again are no new change.
    assert not (await call(workspace, "write_file", path="a", content="11")).is_error
    edit = await call(workspace, "edit_file", path="b", old_string="2", new_string="22")
    assert not edit.is_error
    result = await call(workspace, "write_file", path="c", content="3")
    assert result.is_error
    assert result.output == (
        "not written: c would be file number 3 changed, and this task may change at most "
        "2 files (already changed: a, b)"
    )
    assert not (tmp_path / "c").exists()
    assert workspace.files_changed == {"a", "b"}


async def test_max_diff_bytes(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, Constraints(max_diff_bytes=10))
    assert not (await call(workspace, "write_file", path="a", content="123456")).is_error
    result = await call(workspace, "write_file", path="b", content="12345")
    assert result.is_error
    assert result.output == (
        "not written: this change is 5 bytes and only 4 of the task's 10 bytes of changes are left"
    )
    assert not (tmp_path / "b").exists()
    result = await call(workspace, "edit_file", path="a", old_string="123", new_string="abc")
    assert result.is_error and "this change is 6 bytes" in result.output
    assert (tmp_path / "a").read_text() == "123456"
    result = await call(workspace, "edit_file", path="a", old_string="12", new_string="ab")
    assert not result.is_error
    assert workspace.bytes_written == 10


async def test_allowed_write_globs(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, Constraints(allowed_write_globs=("src/**",)))
    assert not (await call(workspace, "write_file", path="src/x/y.py", content="")).is_error
    result = await call(workspace, "write_file", path="setup.py", content="")
    assert result.is_error
    assert result.output == (
        "writing setup.py is not allowed: this task may only write paths matching src/**"
    )
    assert not (tmp_path / "setup.py").exists()
    (tmp_path / "README").write_text("a")
    result = await call(workspace, "edit_file", path="README", old_string="a", new_string="b")
    assert result.is_error and "writing README is not allowed" in result.output


# --- list_dir --------------------------------------------------------------------------------


async def test_list_dir(workspace: Workspace) -> None:
    root = workspace.root
    (root / "b.txt").write_text("12345")
    (root / "a").mkdir()
    (root / "a" / "inner.txt").write_text("")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref")
    (root / "link").symlink_to(root / "a")
    result = await call(workspace, "list_dir")
    assert result.output.splitlines() == [
        "./ (4 entries)",
        ".git/ (git metadata)",
        "a/",
        "b.txt  (5 bytes)",
        "link/ -> " + str(root / "a"),
    ]
    result = await call(workspace, "list_dir", path="a")
    assert result.output.splitlines() == ["a/ (1 entry)", "inner.txt  (0 bytes)"]


async def test_list_dir_errors_and_cap(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace.root / "f").write_text("")
    (workspace.root / "empty").mkdir()
    result = await call(workspace, "list_dir", path="f")
    assert result.is_error and "is a file, not a folder" in result.output
    result = await call(workspace, "list_dir", path="missing")
    assert result.is_error and "no such folder" in result.output
    assert (await call(workspace, "list_dir", path="empty")).output == "empty/ is empty"
    for n in range(5):
        (workspace.root / "empty" / f"n{n}").write_text("")
    monkeypatch.setattr(files_tool, "MAX_LIST_ENTRIES", 3)
    result = await call(workspace, "list_dir", path="empty")
    assert result.output.splitlines()[-1] == ("[... 2 more entries not shown; use glob to narrow]")
