"""glob, grep and load_skill."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.tools import TOOL_SPECS, Constraints, Workspace, run_tool
from runner.tools import search as search_tool


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    for folder in ("src/app", "src/lib", "docs", ".git/objects", "node/deep/er"):
        (root / folder).mkdir(parents=True)
    files = {
        "README.md": "# Project\nTODO: write docs\n",
        "src/app/main.py": "import os\n\ndef main():\n    # TODO: everything\n    return 0\n",
        "src/lib/util.py": "def helper():\n    return 'todo lowercase'\n",
        "src/lib/data.bin": "",
        "docs/guide.md": "guide\n",
        ".git/config": "TODO in git metadata\n",
        ".git/objects/ab": "TODO\n",
        "node/deep/er/x.py": "TODO deep\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "src/lib/data.bin").write_bytes(b"TODO\0binary")
    return Workspace(root, Constraints(), {})


async def test_glob_recursive_sorted(workspace: Workspace) -> None:
    result = await run_tool("glob", {"pattern": "**/*.py"}, workspace)
    assert result.output.splitlines() == ["node/deep/er/x.py", "src/app/main.py", "src/lib/util.py"]
    result = await run_tool("glob", {"pattern": "*.md"}, workspace)
    assert result.output == "README.md"
    result = await run_tool("glob", {"pattern": "src/*"}, workspace)
    assert result.output.splitlines() == ["src/app/", "src/lib/"]
    result = await run_tool("glob", {"pattern": "src/**"}, workspace)
    assert result.output.splitlines() == [
        "src/app/",
        "src/app/main.py",
        "src/lib/",
        "src/lib/data.bin",
        "src/lib/util.py",
    ]
    result = await run_tool("glob", {"pattern": str(workspace.root / "docs/*.md")}, workspace)
    assert result.output == "docs/guide.md"


async def test_glob_skips_git_and_says_no_match(workspace: Workspace) -> None:
    result = await run_tool("glob", {"pattern": "**/config"}, workspace)
    assert result.output == "no paths match **/config"
    result = await run_tool("glob", {"pattern": "nothing/here/*"}, workspace)
    assert result.output == "no paths match nothing/here/*"
    assert not result.is_error


async def test_glob_is_capped(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_tool, "MAX_GLOB_RESULTS", 2)
    result = await run_tool("glob", {"pattern": "**/*.py"}, workspace)
    assert result.output.splitlines() == [
        "node/deep/er/x.py",
        "src/app/main.py",
        "[1 more paths match and are not shown (3 in all); narrow the pattern]",
    ]


async def test_glob_bad_input(workspace: Workspace) -> None:
    for tool_input, message in [
        ({}, "glob: field 'pattern' is required"),
        ({"pattern": ""}, "pattern is empty"),
        ({"pattern": "src/../../x"}, "contains `..`"),
    ]:
        result = await run_tool("glob", tool_input, workspace)
        assert result.is_error and message in result.output, (tool_input, result.output)


async def test_grep_lines(workspace: Workspace) -> None:
    result = await run_tool("grep", {"pattern": "TODO"}, workspace)
    assert result.output.splitlines() == [
        "README.md:2: TODO: write docs",
        "node/deep/er/x.py:1: TODO deep",
        "src/app/main.py:4:     # TODO: everything",
    ]
    result = await run_tool("grep", {"pattern": "(?i)todo", "path": "src"}, workspace)
    assert result.output.splitlines() == [
        "src/app/main.py:4:     # TODO: everything",
        "src/lib/util.py:2:     return 'todo lowercase'",
    ]


async def test_grep_a_file_and_a_glob(workspace: Workspace) -> None:
    result = await run_tool("grep", {"pattern": "def", "path": "src/lib/util.py"}, workspace)
    assert result.output == "src/lib/util.py:1: def helper():"
    result = await run_tool("grep", {"pattern": "TODO", "glob": "*.py"}, workspace)
    assert result.output.splitlines() == [
        "node/deep/er/x.py:1: TODO deep",
        "src/app/main.py:4:     # TODO: everything",
    ]
    result = await run_tool("grep", {"pattern": "TODO", "glob": "src/**/*.py"}, workspace)
    assert result.output == "src/app/main.py:4:     # TODO: everything"
    result = await run_tool(
        "grep", {"pattern": "TODO", "path": "src", "glob": "app/*.py"}, workspace
    )
    assert result.output == "src/app/main.py:4:     # TODO: everything"


async def test_grep_no_match_skips_binary_and_big_files(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await run_tool("grep", {"pattern": "binary"}, workspace)
    assert not result.is_error
    assert result.output == "no matches for 'binary'"
    monkeypatch.setattr(search_tool, "MAX_GREP_FILE_BYTES", 30)
    result = await run_tool("grep", {"pattern": "TODO"}, workspace)
    assert result.output.splitlines() == [
        "README.md:2: TODO: write docs",
        "node/deep/er/x.py:1: TODO deep",
        "[2 files over 30 bytes were not searched]",
    ]


async def test_grep_errors(workspace: Workspace) -> None:
    result = await run_tool("grep", {"pattern": "([a-z"}, workspace)
    assert result.is_error
    assert result.output.startswith("pattern '([a-z' is not a valid regular expression:")
    result = await run_tool("grep", {"pattern": "x", "path": "missing"}, workspace)
    assert result.is_error and "missing: no such file or folder" in result.output
    result = await run_tool("grep", {"pattern": 1}, workspace)
    assert result.is_error and "field 'pattern' must be a string" in result.output


async def test_grep_is_capped(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace.root / "many.txt").write_text("hit\n" * 50)
    monkeypatch.setattr(search_tool, "MAX_GREP_MATCHES", 10)
    result = await run_tool("grep", {"pattern": "hit"}, workspace)
    lines = result.output.splitlines()
    assert lines[:10] == [f"many.txt:{n}: hit" for n in range(1, 11)]
    assert lines[10:] == ["[stopped at 10 matching lines; narrow the pattern, path or glob]"]


class Skills:
    def load(self, name: str) -> str:
        if name != "testing":
            raise KeyError(name)
        return "# Testing\nWrite the test first.\n"


async def test_load_skill(workspace: Workspace) -> None:
    result = await run_tool("load_skill", {"name": "testing"}, workspace, Skills())
    assert result.output == "# Testing\nWrite the test first.\n"
    assert not result.is_error
    result = await run_tool("load_skill", {"name": "nope"}, workspace, Skills())
    assert result.is_error
    assert result.output.startswith("no skill named 'nope' is available")
    result = await run_tool("load_skill", {"name": "testing"}, workspace)
    assert result.is_error
    assert result.output == "no skill named 'testing' is available: this task has no skills"


def test_tool_specs_describe_the_eight_tools() -> None:
    names = [spec["name"] for spec in TOOL_SPECS]
    assert names == [
        "bash",
        "read_file",
        "write_file",
        "edit_file",
        "list_dir",
        "glob",
        "grep",
        "load_skill",
    ]
    for spec in TOOL_SPECS:
        assert set(spec) == {"name", "description", "input_schema"}
        schema = spec["input_schema"]
        assert schema["type"] == "object"
        assert set(schema.get("required", [])) <= set(schema["properties"])
        assert len(spec["description"]) > 80
