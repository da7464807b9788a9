"""Bash lines at SUPERVISED: the default allow-list, writes by redirection, compound lines."""

from __future__ import annotations

import pytest

from runner.policy import (
    BUILTIN_DENY_LIST,
    DEFAULT_ALLOW_LIST,
    Decision,
    Level,
    Rules,
    Verdict,
    decide,
    parse_rules,
)

NO_RULES = Rules()


def _judge(command: str, level: Level = Level.SUPERVISED, rules: Rules = NO_RULES) -> Decision:
    return decide("bash", {"command": command}, level, rules)


ALLOW_LISTED = [
    "git status",
    "git status --short",
    "git diff HEAD~1 -- src",
    "git log --oneline -5",
    "git show HEAD:README.md",
    "git branch",
    "git branch -a -v",
    "git branch --list 'feature/*'",
    "ls -la src",
    "pwd",
    "cat README.md",
    "head -n 5 src/a.py",
    "tail -20 log.txt",
    "wc -l src/*.py",
    "grep -rn TODO src",
    "grep -rn '/api/v1' .",
    "rg -n 'def main' src",
    "find . -name '*.py' -type f",
    "echo hello",
    "which python",
    "python -m pytest -q tests/runner",
    "python3 -m pytest -x -k policy",
    "pytest tests/test_a.py::test_b -vv",
    "make test",
    "cd src && ls",
    "ls 2>/dev/null",
    "git log 2>&1 | head -5",
    "git status; git diff",
    "FOO=1 git status",
    "timeout 30 pytest -q",
    "bash -c 'git status'",
]


@pytest.mark.parametrize("command", ALLOW_LISTED)
def test_the_default_allow_list_runs(command: str) -> None:
    decision = _judge(command)
    assert decision.verdict is Verdict.ALLOW, decision.rule
    assert decision.rule.startswith("level SUPERVISED: allow-list: ")


NOT_LISTED = {
    "git branch -D main": "deletes a branch",
    "git branch -d old": "deletes a branch",
    "git branch new-feature": "creates a branch",
    "git branch -m a b": "renames a branch",
    "git diff --output=patch.txt": "writes a file",
    "git -c core.pager=evil log": "configuration on the command line",
    "git commit -m x": "not read-only",
    "find . -delete": "deletes (and is denied)",
    "find . -name '*.pyc' -delete": "deletes",
    "find . -exec cat {} ;": "runs a command",
    "find . -fprint out.txt": "writes a file",
    "rg --pre ./evil x": "runs a program per file",
    "pytest --basetemp=/tmp/x": "pytest empties its basetemp",
    "pytest -p evil_plugin": "loads a plugin",
    "make test EXTRA=1": "only exactly `make test`",
    "make install": "not a test",
    "cat ~/.ssh/id_rsa": "reads outside the workspace",
    "cat /etc/passwd": "reads outside the workspace",
    "cat ../other/secret": "reads outside the workspace",
    "cd .. && cat secret": "reads outside the workspace",
    "cd / && ls": "lists outside the workspace",
    "echo $ANTHROPIC_API_KEY": "expands a variable (a secret)",
    "./git status": "a program in the workspace, not git",
    "PATH=.:$PATH git status": "a changed PATH",
    "GIT_EXTERNAL_DIFF=./x git diff": "git runs the variable's program",
    "npm install": "not listed",
    "xargs grep x": "arguments come from stdin",
    "rm build/x.o": "not read-only",
}


@pytest.mark.parametrize("command", list(NOT_LISTED), ids=list(NOT_LISTED.values()))
def test_what_the_allow_list_refuses_asks(command: str) -> None:
    assert _judge(command).verdict in (Verdict.ASK, Verdict.DENY)


@pytest.mark.parametrize(
    "command",
    [
        "echo hi > out.txt",
        "echo hi >> out.txt",
        "ls 2> errors.txt",
        "ls &> all.txt",
        "ls >| out.txt",
        "cat a >& out.txt",
        "git log | tee log.txt",
        "git status > /tmp/status",
        "> empty.txt",
        "cat <> rw.txt",
    ],
)
def test_output_redirection_is_a_write(command: str) -> None:
    decision = _judge(command)
    assert decision.verdict is Verdict.ASK, decision.rule
    assert "is a write" in decision.rule
    # An allow rule for the command does not cover the file it writes, nor does a write rule.
    rules = parse_rules(allow=["bash(echo:*)", "bash(ls:*)", "bash(cat:*)", "write_file"])
    assert _judge(command, rules=rules).verdict is Verdict.ASK
    assert _judge(command, Level.INTERN, rules).verdict is Verdict.ASK
    assert _judge(command, Level.AUTONOMOUS).verdict is Verdict.ALLOW
    assert _judge(command, Level.STUDENT).verdict is Verdict.DENY


@pytest.mark.parametrize("command", ["ls > /dev/null", "ls 2>&1", "ls 2>/dev/null >&2", "ls >&-"])
def test_descriptors_and_dev_null_are_no_writes(command: str) -> None:
    assert _judge(command).verdict is Verdict.ALLOW


def test_a_compound_line_gets_its_strictest_part() -> None:
    assert _judge("git status && npm install").verdict is Verdict.ASK
    assert _judge("git status && sudo ls").verdict is Verdict.DENY
    rules = parse_rules(deny=["bash(npm publish:*)"])
    decision = _judge("git status; npm publish --tag x", Level.AUTONOMOUS, rules)
    assert decision == Decision(Verdict.DENY, "deny: bash(npm publish:*)")


def test_rules_match_the_unwrapped_command() -> None:
    rules = parse_rules(deny=["bash(npm publish:*)"])
    for command in (
        "timeout 60 npm publish",
        "env CI=1 npm publish",
        "CI=1 npm publish",
        "nice -n 5 nohup npm publish",
        "sh -c 'npm publish'",
        'bash -lc "cd pkg && npm publish"',
        "echo pkg | xargs npm publish",
    ):
        assert _judge(command, Level.AUTONOMOUS, rules).verdict is Verdict.DENY, command
    rules = parse_rules(deny=["bash(timeout:*)"])
    assert _judge("timeout 5 ls", Level.AUTONOMOUS, rules).verdict is Verdict.DENY


def test_git_push_force_is_denied_and_a_plain_push_is_not() -> None:
    for command in (
        "git push --force",
        "git push -f origin main",
        "git push origin +main",
        "git push --force-with-lease",
        "git -C repo push -uf origin x",
    ):
        assert _judge(command, Level.AUTONOMOUS).verdict is Verdict.DENY, command
    assert _judge("git push origin main", Level.AUTONOMOUS).verdict is Verdict.ALLOW
    assert _judge("git push origin main").verdict is Verdict.ASK


def test_near_misses_of_the_deny_list_are_not_denied() -> None:
    for command in (
        "rm -rf build",
        "rm -rf ./dist/",
        "rm -rf /tmp/work/cache",
        "rm -f *.pyc",
        "rm -r src/old",
        "chmod -R 755 scripts",
        "find . -name '*.pyc' -delete",
        "grep -rn 'rm -rf /' docs",
        "git commit -m 'guard against rm -rf /'",
        "grep shutdown logs/app.log",
        "curl https://example.com -o page.html",
        "dd if=/dev/zero of=disk.img bs=1M count=1",
    ):
        assert _judge(command, Level.AUTONOMOUS).verdict is Verdict.ALLOW, command


def test_the_documented_lists() -> None:
    commands = [entry.command for entry in DEFAULT_ALLOW_LIST]
    for expected in ("git status", "git diff", "git log", "git show", "git branch", "ls", "pwd"):
        assert expected in commands
    for expected in ("cat", "head", "tail", "wc", "grep", "rg", "find", "echo", "which"):
        assert expected in commands
    assert {"pytest", "python -m pytest", "make test"} <= set(commands)
    assert len(BUILTIN_DENY_LIST) >= 10
