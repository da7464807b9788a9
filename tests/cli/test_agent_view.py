"""How an agent run reads: folded tool calls and results, the status line, answers,
and the agent options of `stigmer run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.agent_run import parse_answer
from cli.agent_view import (
    ASCII,
    Progress,
    decision_label,
    fold_call,
    fold_result,
    glyphs_for,
    input_summary,
    status_line,
    summary_line,
)
from cli.audit import audit_row
from cli.errors import CliError, ExitCode
from cli.run import agent_task_spec, build_agent_spec, choose_workspace
from protos import event_pb2, task_pb2, task_service_pb2


def call(tool: str, **tool_input: Any) -> str:
    return fold_call(tool, json.dumps(tool_input))


def test_calls_fold_to_one_line() -> None:
    assert call("bash", command="git status") == "▸ bash  git status"
    assert call("bash", command="make \\\n  test\n\necho  done") == "▸ bash  make \\ test echo done"
    assert call("write_file", path="src/app.py", content="x" * 5000) == "▸ write_file  src/app.py"
    assert call("edit_file", path="a.py", old_string="a", new_string="b") == "▸ edit_file  a.py"
    assert call("read_file", path="a.py") == "▸ read_file  a.py"
    assert call("read_file", path="a.py", offset=10, limit=5) == "▸ read_file  a.py lines 10-14"
    assert call("list_dir") == "▸ list_dir  ."
    assert call("glob", pattern="**/*.py", path="src") == "▸ glob  **/*.py in src"
    assert call("grep", pattern="TODO", path="src") == "▸ grep  'TODO' in src"
    assert call("load_skill", name="git-basics") == "▸ load_skill  git-basics"
    assert call("mystery", a=1, b="two") == "▸ mystery  a=1 b=two"
    assert fold_call("bash", "{not json") == "▸ bash  {not json"
    assert fold_call("bash", "{}") == "▸ bash"


def test_a_long_call_is_cut_to_the_width() -> None:
    line = fold_call("bash", json.dumps({"command": "echo " + "x" * 500}), width=60)
    assert len(line) <= 60 and line.endswith("…")
    assert fold_call("bash", '{"command": "ls"}', glyphs=ASCII) == "> bash  ls"


def result(output: str, **fields: Any) -> event_pb2.ToolResult:
    return event_pb2.ToolResult(call_id="c", output=output, **fields)


def test_bash_results_fold_to_exit_code_and_size() -> None:
    ok = result("a\nb\nc\nexit code 0", exit_code=0, duration_seconds=0.2)
    assert fold_result(ok, "bash") == ["  ✓ exit 0, 3 lines"]
    quiet = result("(no output)\nexit code 0", exit_code=0)
    assert fold_result(quiet, "bash") == ["  ✓ exit 0, no output"]
    failed = result(
        "compiling\nerror: no such file\n\nexit code 2", exit_code=2, duration_seconds=3.25
    )
    assert fold_result(failed, "bash") == [
        "  ✗ exit 2, 2 lines, 3.2s",
        "    error: no such file",
    ]
    killed = result("working\nkilled by signal 9 (SIGKILL)", exit_code=-9)
    assert fold_result(killed, "bash") == ["  ✗ killed by signal 9, 1 line", "    working"]
    timed_out = result(
        "working\ncommand timed out after 5 s; its process group was killed", is_error=True
    )
    assert fold_result(timed_out, "bash") == [
        "  ✗ command timed out after 5 s; its process group was killed"
    ]


def test_other_results_fold_to_their_line_or_their_size() -> None:
    assert fold_result(result("created src/app.py (120 bytes)"), "write_file") == [
        "  ✓ created src/app.py (120 bytes)"
    ]
    assert fold_result(result("1 a\n2 b\n3 c"), "read_file") == ["  ✓ 3 lines"]
    assert fold_result(result("1 only"), "read_file") == ["  ✓ 1 line"]
    assert fold_result(result("a.py\nb.py"), "glob") == ["  ✓ 2 lines"]
    assert fold_result(result(""), "list_dir") == ["  ✓ done"]
    refused = result("denied by policy: deny: bash(rm:*)", is_error=True)
    assert fold_result(refused, "bash") == ["  ✗ denied by policy: deny: bash(rm:*)"]
    error = result("old_string matches 3 places; give more context\nhint", is_error=True)
    assert fold_result(error, "edit_file") == ["  ✗ old_string matches 3 places; give more context"]
    assert fold_result(result("x" * 500), "write_file", width=40)[0].endswith("…")
    assert fold_result(result("", is_error=True), "grep", glyphs=ASCII) == ["  x failed"]


def test_status_and_summary_lines() -> None:
    progress = Progress()
    assert status_line(progress, 3) == "starting · 0 in / 0 out · $0.0000 · 0:03"
    progress.update(
        event_pb2.Usage(
            input_tokens=12345, output_tokens=340, cost_usd=0.01234, turns=3, model="m-1"
        )
    )
    assert status_line(progress, 62) == "turn 3 · 12.3k in / 340 out · $0.0123 · 1:02"
    progress.take_result(
        task_pb2.TaskResult(turns=4, input_tokens=20000, output_tokens=500, cost_usd=0.02)
    )
    assert summary_line(progress, 3725, "succeeded") == (
        "succeeded · 4 turns · 20.0k in / 500 out tokens · $0.0200 · 1:02:05 · m-1"
    )


def test_glyphs_follow_the_encoding() -> None:
    assert glyphs_for("utf-8").call == "▸"
    assert glyphs_for("UTF8").ok == "✓"
    assert glyphs_for("ascii") is ASCII
    assert glyphs_for(None) is ASCII


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("y", (True, False)),
        (" YES ", (True, False)),
        ("a", (True, True)),
        ("always", (True, True)),
        ("n", (False, False)),
        ("no", (False, False)),
        ("", None),
        ("maybe", None),
    ],
)
def test_parse_answer(typed: str, answer: tuple[bool, bool] | None) -> None:
    assert parse_answer(typed) == answer


def test_input_summary_for_the_audit() -> None:
    assert input_summary("bash", '{"command": "git  log\\n-1"}') == "git log -1"
    assert decision_label(event_pb2.DECISION_DENY) == "deny"
    record = task_service_pb2.AuditRecord(
        task_id="t-1",
        tool="bash",
        input_json='{"command": "ls"}',
        decision=event_pb2.DECISION_ASK,
        rule="level: intern",
        approved_by="cli:alice",
        exit_code=0,
        duration_seconds=0.25,
    )
    assert audit_row(record) == [
        "-",
        "t-1",
        "bash",
        "ls",
        "ask",
        "level: intern",
        "cli:alice",
        "0",
        "250ms",
    ]
    denied = task_service_pb2.AuditRecord(tool="x", decision=event_pb2.DECISION_DENY, is_error=True)
    assert audit_row(denied)[5:8] == ["-", "-", "error"]


def test_build_agent_spec() -> None:
    agent = build_agent_spec(
        ["fix it"],
        skills=["git-basics"],
        level="Intern",
        model="m",
        max_turns=5,
        max_cost=0.5,
        allow=["bash(git status:*)"],
        ask=["write_file(src/**)"],
        deny=["bash(git push:*)"],
        approval_timeout=30,
        timeout=600,
    )
    assert agent.prompt == "fix it"
    assert list(agent.skills) == ["git-basics"]
    assert agent.policy_level == task_pb2.POLICY_LEVEL_INTERN
    assert agent.model == "m"
    assert (agent.limits.max_turns, agent.limits.max_cost_usd) == (5, 0.5)
    assert agent.limits.max_wall_seconds == 600
    assert list(agent.allow_rules) == ["bash(git status:*)"]
    assert list(agent.ask_rules) == ["write_file(src/**)"]
    assert list(agent.deny_rules) == ["bash(git push:*)"]
    assert agent.approval_timeout_seconds == 30
    plain = build_agent_spec(["hi"])
    assert plain.policy_level == task_pb2.POLICY_LEVEL_UNSPECIFIED and not plain.model


@pytest.mark.parametrize(
    ("args", "needle"),
    [([], "no prompt given"), (["fix", "it"], "quote the prompt"), (["  "], "prompt is empty")],
)
def test_build_agent_spec_checks(args: list[str], needle: str) -> None:
    with pytest.raises(CliError) as err:
        build_agent_spec(args)
    assert err.value.exit_code == ExitCode.USAGE and needle in err.value.message


def test_workspaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repo").mkdir()
    assert choose_workspace(None, None, None) is None
    assert agent_task_spec(build_agent_spec(["x"]), None).workspace.path == str(tmp_path)
    here = choose_workspace("sub/..", None, None)
    assert here is not None and here.path == str(tmp_path)
    git = choose_workspace(None, "repo", "main")
    assert git is not None and (git.git.url, git.git.branch) == (str(tmp_path / "repo"), "main")
    remote = choose_workspace(None, "https://example.com/r.git", None)
    assert remote is not None and remote.git.url == "https://example.com/r.git"
    spec = agent_task_spec(build_agent_spec(["x"]), git, retries=2)
    assert spec.workspace.git.url == str(tmp_path / "repo") and spec.retry.max_attempts == 3
    with pytest.raises(CliError, match="--workspace and --repo"):
        choose_workspace(".", "repo", None)
    with pytest.raises(CliError, match="--branch needs --repo"):
        choose_workspace(None, None, "main")
