"""Task files: the pure parser (text → content or every problem) and the spec it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.errors import CliError, ExitCode
from cli.task_file import Problem, TaskFile, parse_task_file
from cli.task_submit import load_task, problems_message
from protos import task_pb2

FULL = """\
id: fix-flaky-test
goal: Make tests/test_io.py pass.
description: |
  It fails one run in ten on CI.
  Look at the temp files.
applicable_skills: [python-testing, git-basics]
scope:
  allowed_write_globs: ["src/**", "tests/**"]
  allowed_read_globs:
    - "**"
constraints:
  max_files_changed: 5
  max_diff_bytes: 20000
  timeout_seconds: 900
  denylisted_commands: ["git push", "rm -rf"]
level: Supervised
model: claude-sonnet-4-5
workspace: ../project
"""


def parsed(text: str) -> TaskFile:
    result = parse_task_file(text)
    assert isinstance(result, TaskFile), result
    return result


def problems(text: str) -> list[str]:
    result = parse_task_file(text)
    assert isinstance(result, list), result
    return [p.describe() for p in result]


def test_a_full_file() -> None:
    f = parsed(FULL)
    assert f == TaskFile(
        id="fix-flaky-test",
        goal="Make tests/test_io.py pass.",
        description="It fails one run in ten on CI.\nLook at the temp files.\n",
        applicable_skills=("python-testing", "git-basics"),
        allowed_write_globs=("src/**", "tests/**"),
        allowed_read_globs=("**",),
        max_files_changed=5,
        max_diff_bytes=20000,
        timeout_seconds=900.0,
        denylisted_commands=("git push", "rm -rf"),
        level="supervised",
        model="claude-sonnet-4-5",
        workspace="../project",
    )
    assert f.prompt == (
        "Make tests/test_io.py pass.\n\nIt fails one run in ten on CI.\nLook at the temp files."
    )


def test_the_spec_of_a_full_file(tmp_path: Path) -> None:
    spec = parsed(FULL).task_spec(tmp_path / "tasks")
    agent = spec.agent
    assert agent.prompt.startswith("Make tests/test_io.py pass.\n\nIt fails")
    assert list(agent.skills) == ["python-testing", "git-basics"]
    assert agent.model == "claude-sonnet-4-5"
    assert agent.policy_level == task_pb2.POLICY_LEVEL_SUPERVISED
    assert agent.limits.max_wall_seconds == 900
    c = agent.constraints
    assert list(c.allowed_write_globs) == ["src/**", "tests/**"]
    assert list(c.allowed_read_globs) == ["**"]
    assert (c.max_files_changed, c.max_diff_bytes) == (5, 20000)
    assert list(c.denylisted_commands) == ["git push", "rm -rf"]
    # The workspace is relative to the file's folder.
    assert spec.workspace.path == str(tmp_path / "project")
    assert dict(spec.labels) == {"task_file_id": "fix-flaky-test"}


def test_a_minimal_file_runs_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    f = parsed("goal: tidy up\n")
    assert f.prompt == "tidy up" and f.id == ""
    spec = f.task_spec(tmp_path / "elsewhere")
    assert spec.workspace.path == str(tmp_path)
    assert spec.agent.policy_level == task_pb2.POLICY_LEVEL_UNSPECIFIED
    assert not spec.labels
    # Empty optional fields count as not given.
    assert parsed("goal: x\ndescription:\nscope:\nconstraints:\n").prompt == "x"


def test_a_repo_is_cloned_and_a_local_one_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    spec = parsed("goal: x\nrepo: repo\nbranch: dev\n").task_spec(tmp_path)
    assert spec.workspace.git.url == str(tmp_path / "repo")
    assert spec.workspace.git.branch == "dev"
    for url in ("https://example.com/x.git", "git@example.com:x.git", "file:///srv/x"):
        assert parsed(f"goal: x\nrepo: '{url}'\n").task_spec(tmp_path).workspace.git.url == url


def test_the_command_line_workspace_wins(tmp_path: Path) -> None:
    chosen = task_pb2.Workspace(path="/somewhere")
    assert parsed(FULL).task_spec(tmp_path, chosen).workspace.path == "/somewhere"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML errors, with the line.
        ("goal: x\n  bad: [\n", "line 2: not valid YAML: mapping values are not allowed here"),
        ("goal: [x\n", "line 2: not valid YAML: while parsing a flow sequence"),
        ("", "the file is empty; it needs at least `goal: <what to do>`"),
        ("- goal: x\n", "line 1: the file must hold fields such as `goal: ...` (got a list)"),
        # Missing or empty goal.
        ("id: a\n", "goal: missing: say what the agent should do (`goal: ...`)"),
        ("goal:\n", "line 1: goal: is empty: say what the agent should do"),
        ("goal: '  '\n", "line 1: goal: must not be empty"),
        # Unknown keys, at every level.
        ("goal: x\ngaol: y\n", "line 2: gaol: unknown field; expected one of id, goal,"),
        ("goal: x\nscope:\n  write: [a]\n", "line 3: scope.write: unknown field; expected"),
        ("goal: x\nconstraints: {timeout: 3}\n", "line 2: constraints.timeout: unknown field"),
        ("goal: x\ngoal: y\n", "line 2: goal: given twice (first on line 1)"),
        # Wrong types.
        ("goal: 42\n", 'line 1: goal: must be a string (got 42 (a number)); quote it: "42"'),
        ("goal: x\nid: 7\n", "line 2: id: must be a string (got 7 (a number))"),
        ("goal: x\nscope: [a]\n", "line 2: scope: must be a mapping of fields (got a list)"),
        (
            "goal: x\nconstraints:\n  max_files_changed: 2.5\n",
            "line 3: constraints.max_files_changed: must be a whole number (got 2.5 (a number))",
        ),
        (
            "goal: x\nconstraints:\n  max_diff_bytes: yes\n",
            "line 3: constraints.max_diff_bytes: must be a whole number (got true (a boolean))",
        ),
        (
            "goal: x\nconstraints:\n  timeout_seconds: soon\n",
            "line 3: constraints.timeout_seconds: must be a number of seconds (got 'soon')",
        ),
        # Lists where lists are needed.
        (
            "goal: x\nscope:\n  allowed_write_globs: src/**\n",
            "line 3: scope.allowed_write_globs: must be a list of strings (got 'src/**')",
        ),
        (
            "goal: x\napplicable_skills: {a: 1}\n",
            "line 2: applicable_skills: must be a list of strings (got a mapping)",
        ),
        (
            "goal: x\nconstraints:\n  denylisted_commands:\n    - git push\n    - 3\n",
            "line 5: constraints.denylisted_commands[1]: must be a string (got 3 (a number))",
        ),
        ("goal: x\napplicable_skills: ['']\n", "line 2: applicable_skills[0]: must not be empty"),
        # Negative or too large numbers.
        (
            "goal: x\nconstraints:\n  max_files_changed: -1\n",
            "line 3: constraints.max_files_changed: must not be negative (got -1)",
        ),
        (
            "goal: x\nconstraints:\n  timeout_seconds: -0.5\n",
            "line 3: constraints.timeout_seconds: must not be negative (got -0.5)",
        ),
        (
            "goal: x\nconstraints:\n  timeout_seconds: 100000\n",
            "line 3: constraints.timeout_seconds: must be at most 86400",
        ),
        (
            "goal: x\nconstraints:\n  max_files_changed: 5000000000\n",
            "line 3: constraints.max_files_changed: must be at most 4294967295",
        ),
        # Values the daemon would refuse.
        ("goal: x\nlevel: boss\n", "line 2: level: 'boss': expected one of student, intern,"),
        (
            "goal: x\napplicable_skills: [Python]\n",
            "line 2: applicable_skills[0]: 'Python' is not a skill name",
        ),
        (
            "goal: x\nscope:\n  allowed_read_globs: [/etc/**]\n",
            "line 3: scope.allowed_read_globs[0]: '/etc/**': use a glob relative to the workspace",
        ),
        ("goal: x\nid: " + "a" * 129 + "\n", "line 2: id: must be at most 128 characters"),
        ("goal: x\nworkspace: a\nrepo: b\n", "line 3: repo: give `workspace` or `repo`, not both"),
        ("goal: x\nbranch: main\n", "line 2: branch: needs `repo`"),
    ],
)
def test_each_kind_of_problem(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = """\
id: 42
scope:
  allowed_write_globs: src/**
  extra: true
constraints:
  max_files_changed: -1
  max_diff_bytes: lots
  denylisted_commands: git push
level: boss
colour: blue
"""
    assert problems(text) == [
        'line 1: id: must be a string (got 42 (a number)); quote it: "42"',
        "line 3: scope.allowed_write_globs: must be a list of strings (got 'src/**'); "
        "write `[a, b]` or one `- a` per line",
        "line 4: scope.extra: unknown field; expected one of allowed_write_globs, "
        "allowed_read_globs",
        "line 6: constraints.max_files_changed: must not be negative (got -1); 0 means no limit",
        "line 7: constraints.max_diff_bytes: must be a whole number (got 'lots')",
        "line 8: constraints.denylisted_commands: must be a list of strings (got 'git push'); "
        "write `[a, b]` or one `- a` per line",
        "line 9: level: 'boss': expected one of student, intern, supervised, autonomous",
        "line 10: colour: unknown field; expected one of id, goal, description, "
        "applicable_skills, scope, constraints, level, model, workspace, repo, branch",
        "goal: missing: say what the agent should do (`goal: ...`)",
    ]


def test_the_message_names_the_file_and_each_problem() -> None:
    message = problems_message(
        "t.yaml", [Problem(3, "scope", "must be a mapping"), Problem(None, "goal", "missing")]
    )
    assert message.splitlines() == [
        "error: t.yaml: 2 problems; nothing was submitted:",
        "  t.yaml:3: scope: must be a mapping",
        "  t.yaml: goal: missing",
    ]


def test_load_task_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("id: abc\ngoal: do it\n")
    request_id, spec = load_task(str(tmp_path / "t.yaml"), str(tmp_path), None, None)
    assert request_id == "abc"
    assert spec.workspace.path == str(tmp_path)
    # Without an id, every submit is a new task.
    (tmp_path / "u.yaml").write_text("goal: do it\n")
    first, _ = load_task(str(tmp_path / "u.yaml"), None, None, None)
    second, _ = load_task(str(tmp_path / "u.yaml"), None, None, None)
    assert first != second


def test_load_task_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"goal: x\n\xff\xfe\n")
    with pytest.raises(CliError) as err:
        load_task(str(tmp_path / "bin.yaml"), None, None, None)
    assert err.value.exit_code == ExitCode.USAGE
    assert "bin.yaml:2: not UTF-8 text" in err.value.message
    with pytest.raises(CliError) as err:
        load_task(str(tmp_path), None, None, None)
    assert err.value.exit_code == ExitCode.USAGE and "is a directory" in err.value.message
