"""Levels by tool family, and the order: deny > ask > allow and pre-approvals > level."""

from __future__ import annotations

from typing import Any

import pytest

from runner.policy import (
    READ_ONLY_TOOLS,
    WRITE_TOOLS,
    Decision,
    Level,
    Rules,
    Verdict,
    decide,
    parse_rules,
)

A, Q, D = Verdict.ALLOW, Verdict.ASK, Verdict.DENY
INPUTS: dict[str, dict[str, Any]] = {
    "read_file": {"path": "src/a.py"},
    "list_dir": {},
    "glob": {"pattern": "**/*.py"},
    "grep": {"pattern": "TODO", "path": "src"},
    "load_skill": {"name": "python"},
    "write_file": {"path": "src/a.py", "content": "x"},
    "edit_file": {"path": "src/a.py", "old_string": "a", "new_string": "b"},
    "bash_listed": {"command": "git status"},
    "bash_other": {"command": "npm install"},
}
EXPECTED = {
    #             read-only  write  bash (allow-listed)  bash (other)
    Level.STUDENT: (A, D, D, D),
    Level.INTERN: (A, Q, Q, Q),
    Level.SUPERVISED: (A, Q, A, Q),
    Level.AUTONOMOUS: (A, A, A, A),
}


NO_RULES = Rules()


def _decide(tool: str, level: Level, rules: Rules = NO_RULES, **kwargs: Any) -> Decision:
    name = "bash" if tool.startswith("bash") else tool
    return decide(name, INPUTS[tool], level, rules, **kwargs)


def test_the_tool_families() -> None:
    assert {"read_file", "list_dir", "glob", "grep", "load_skill"} == READ_ONLY_TOOLS
    assert {"write_file", "edit_file"} == WRITE_TOOLS
    assert [level.value for level in Level] == ["student", "intern", "supervised", "autonomous"]


@pytest.mark.parametrize("level", list(Level), ids=lambda level: level.name)
@pytest.mark.parametrize("tool", list(INPUTS))
def test_each_level_and_tool_family(level: Level, tool: str) -> None:
    read_only, write, listed, other = EXPECTED[level]
    expected = {"bash_listed": listed, "bash_other": other}.get(
        tool, read_only if tool in READ_ONLY_TOOLS else write
    )
    decision = _decide(tool, level)
    assert decision.verdict is expected, decision.rule
    assert decision.rule.startswith(f"level {level.name}")


def test_level_rule_texts() -> None:
    assert _decide("write_file", Level.SUPERVISED).rule == (
        "level SUPERVISED: write_file is not in the allow-list"
    )
    assert _decide("bash_listed", Level.SUPERVISED).rule == (
        "level SUPERVISED: allow-list: git status"
    )
    assert _decide("bash_other", Level.STUDENT).rule == (
        "level STUDENT: bash is not a read-only tool"
    )
    assert _decide("read_file", Level.INTERN).rule == "level INTERN: read_file is read-only"


def test_an_unknown_tool_is_denied() -> None:
    decision = decide("launch_missiles", {}, Level.AUTONOMOUS, Rules())
    assert decision == Decision(D, "deny: unknown tool 'launch_missiles'")


def test_a_bash_call_without_a_command_string_is_denied() -> None:
    assert decide("bash", {"command": ["ls"]}, Level.AUTONOMOUS, Rules()).verdict is D


def test_deny_beats_ask_and_allow() -> None:
    rules = parse_rules(allow=["write_file(src/**)"], ask=["write_file(src/**)"])
    assert _decide("write_file", Level.AUTONOMOUS, rules).verdict is Q
    rules = parse_rules(
        allow=["write_file(src/**)"], ask=["write_file(src/**)"], deny=["write_file(src/a.py)"]
    )
    decision = _decide("write_file", Level.AUTONOMOUS, rules)
    assert decision == Decision(D, "deny: write_file(src/a.py)")


def test_ask_beats_allow_and_the_level() -> None:
    rules = parse_rules(allow=["bash(git status:*)"], ask=["bash(git status)"])
    assert _decide("bash_listed", Level.AUTONOMOUS, rules) == Decision(Q, "ask: bash(git status)")
    rules = parse_rules(ask=["read_file(src/**)"])
    assert _decide("read_file", Level.AUTONOMOUS, rules) == Decision(Q, "ask: read_file(src/**)")


def test_allow_beats_the_level() -> None:
    rules = parse_rules(allow=["write_file(src/**)", "bash(npm install)"])
    assert _decide("write_file", Level.INTERN, rules) == Decision(A, "allow: write_file(src/**)")
    assert _decide("bash_other", Level.SUPERVISED, rules) == Decision(A, "allow: bash(npm install)")


def test_pre_approved_allows_within_the_level() -> None:
    granted = ["bash(npm install)", "write_file(src/a.py)"]
    decision = _decide("bash_other", Level.SUPERVISED, pre_approved=granted)
    assert decision == Decision(A, "pre-approved: bash(npm install)")
    assert _decide("write_file", Level.INTERN, pre_approved=granted).verdict is A


def test_pre_approved_never_lifts_a_deny() -> None:
    rules = parse_rules(deny=["bash(npm:*)", "write_file(src/**)"])
    granted = ["bash(npm install)", "write_file(src/a.py)", "bash"]
    assert _decide("bash_other", Level.AUTONOMOUS, rules, pre_approved=granted).verdict is D
    assert _decide("write_file", Level.AUTONOMOUS, rules, pre_approved=granted).verdict is D
    decision = decide(
        "bash", {"command": "rm -rf /"}, Level.AUTONOMOUS, Rules(), pre_approved=["bash"]
    )
    assert decision.verdict is D


def test_pre_approved_never_lifts_an_ask_rule() -> None:
    rules = parse_rules(ask=["bash(npm:*)"])
    assert _decide("bash_other", Level.AUTONOMOUS, rules, pre_approved=["bash"]).verdict is Q


@pytest.mark.parametrize("tool", ["write_file", "edit_file", "bash_listed", "bash_other"])
def test_student_never_writes_or_runs(tool: str) -> None:
    rules = parse_rules(allow=["write_file", "edit_file", "bash"], ask=["write_file"])
    granted = ["write_file(src/**)", "edit_file", "bash(git status)", "bash"]
    decision = _decide(tool, Level.STUDENT, rules, pre_approved=granted)
    assert decision.verdict is D
    assert decision.rule.startswith("level STUDENT")


def test_a_malformed_pre_approval_grants_nothing() -> None:
    assert _decide("bash_other", Level.SUPERVISED, pre_approved=["bash(", "nope"]).verdict is Q


def test_denylisted_commands_are_deny_prefixes() -> None:
    kwargs: dict[str, Any] = {"denylisted_commands": ["npm install", "'curl'"]}
    decision = _decide("bash_other", Level.AUTONOMOUS, **kwargs)
    assert decision == Decision(D, "deny (task denylist): npm install")
    for command in ("curl x", "/usr/bin/curl x", "timeout 5 curl x", "ls && curl x"):
        verdict = decide("bash", {"command": command}, Level.AUTONOMOUS, Rules(), **kwargs).verdict
        assert verdict is D, command
    verdict = decide("bash", {"command": "curly"}, Level.AUTONOMOUS, Rules(), **kwargs).verdict
    assert verdict is A
    allowed = parse_rules(allow=["bash"])
    decision = decide("bash", {"command": "npm install x"}, Level.AUTONOMOUS, allowed, **kwargs)
    assert decision.verdict is D


def test_a_whole_line_approval_allows_that_line_only() -> None:
    line = "echo $(date) > stamp.txt"
    assert decide("bash", {"command": line}, Level.SUPERVISED, Rules()).verdict is Q
    granted = [f"bash({line})"]
    decision = decide("bash", {"command": line}, Level.SUPERVISED, Rules(), pre_approved=granted)
    assert decision == Decision(A, f"pre-approved: bash({line})")
    other = "echo $(date) > other.txt"
    decision = decide("bash", {"command": other}, Level.SUPERVISED, Rules(), pre_approved=granted)
    assert decision.verdict is Q
    bad = "echo $(rm -rf /)"
    granted = [f"bash({bad})"]
    decision = decide("bash", {"command": bad}, Level.AUTONOMOUS, Rules(), pre_approved=granted)
    assert decision.verdict is D
