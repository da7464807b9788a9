"""Rule parsing: what is accepted, what is refused and how the refusal reads."""

from __future__ import annotations

import pytest

from runner.policy import Level, RuleError, Rules, Verdict, decide, parse_rules


@pytest.mark.parametrize(
    "rule",
    [
        "bash",
        "Bash",
        "bash(*)",
        "bash(git status)",
        "bash(git status:*)",
        "Bash(npm run test:*)",
        "bash(make && make test)",  # an exact whole line, as an "always" approval records it
        "bash(ls *.py)",
        "write_file(src/**)",
        "read_file(*.md)",
        "edit_file(./docs/**/*.rst)",
        "Read(src/**)",
        "LS",
        "grep(src/**)",
        "glob",
        "load_skill(python-*)",
        "  bash( git  status :*)  ",
    ],
)
def test_good_rules_are_accepted(rule: str) -> None:
    rules = parse_rules(allow=[rule])
    assert rules.allow == (rule.strip(),)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("rm -rf", "expected tool or tool(pattern)"),
        ("bash(git status", "missing ')'"),
        ("shell(ls)", "unknown tool 'shell'"),
        ("bash()", "empty pattern"),
        ("bash(:*)", "empty command before ':*'"),
        ("bash(git :* status)", "':*' is only allowed at the end"),
        ("bash(make && make test:*)", "must be one simple command"),
        ("bash(ls > out:*)", "must be one simple command"),
        ("write_file(/etc/**)", "relative to the workspace"),
        ("read_file(../secrets/*)", "relative to the workspace"),
        ("read_file(~/x)", "relative to the workspace"),
        ("write_file(src/[abc)", "unclosed '['"),
    ],
)
def test_bad_rules_name_the_rule_and_the_problem(rule: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(deny=[rule])
    assert repr(rule) in str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith("deny rule")


def test_every_problem_is_listed() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(allow=["nope(x)"], ask=["bash("], deny=["bash(ok)", 42])  # type: ignore[list-item]
    assert len(caught.value.problems) == 3
    assert caught.value.problems[0].startswith("allow rule 'nope(x)'")
    assert caught.value.problems[1].startswith("ask rule 'bash('")
    assert caught.value.problems[2] == "deny rule 42: a rule must be a string"


def test_rule_error_is_a_value_error() -> None:
    assert issubclass(RuleError, ValueError)


def _bash(command: str, rules: Rules, level: Level = Level.INTERN) -> Verdict:
    return decide("bash", {"command": command}, level, rules).verdict


@pytest.mark.parametrize(
    ("rule", "command", "verdict"),
    [
        ("bash(git status)", "git status", Verdict.ALLOW),
        ("bash(git status)", "git  status", Verdict.ALLOW),
        ("bash(git status)", "'git' \"status\"", Verdict.ALLOW),
        ("bash(git status)", "git status -s", Verdict.ASK),
        ("bash(git status:*)", "git status", Verdict.ALLOW),
        ("bash(git status:*)", "git status -s", Verdict.ALLOW),
        ("bash(git status:*)", "git statusx", Verdict.ASK),
        ("bash(git status:*)", "git", Verdict.ASK),
        ("Bash(npm test:*)", "timeout 60 npm test", Verdict.ALLOW),
        ("bash(git status:*)", "git status && git push", Verdict.ASK),
        ("bash(make && make test)", "make && make test", Verdict.ALLOW),
        ("bash", "anything at all", Verdict.ALLOW),
    ],
)
def test_bash_patterns(rule: str, command: str, verdict: Verdict) -> None:
    assert _bash(command, parse_rules(allow=[rule])) is verdict


def test_an_allow_rule_does_not_trust_a_command_from_elsewhere() -> None:
    # `./git` could be anything the agent wrote; only the command as written is allowed.
    rules = parse_rules(allow=["bash(git status:*)"])
    assert _bash("./git status", rules) is Verdict.ASK


def test_a_deny_rule_catches_a_command_from_any_directory() -> None:
    rules = parse_rules(deny=["bash(rm:*)"])
    assert _bash("/bin/rm x", rules, Level.AUTONOMOUS) is Verdict.DENY
    assert _bash("\\rm x", rules, Level.AUTONOMOUS) is Verdict.DENY


def _path(tool: str, path: str, rules: Rules, level: Level = Level.SUPERVISED) -> Verdict:
    return decide(tool, {"path": path, "content": "x"}, level, rules).verdict


@pytest.mark.parametrize(
    ("pattern", "path", "verdict"),
    [
        ("src/**", "src/a.py", Verdict.ALLOW),
        ("src/**", "src/a/b/c.py", Verdict.ALLOW),
        ("src/**", "./src/a.py", Verdict.ALLOW),
        ("src/**", "srcx/a.py", Verdict.ASK),
        ("src/*.py", "src/a.py", Verdict.ALLOW),
        ("src/*.py", "src/a/b.py", Verdict.ASK),
        ("**/*.md", "README.md", Verdict.ALLOW),
        ("**/*.md", "docs/x/README.md", Verdict.ALLOW),
        ("*.md", "docs/README.md", Verdict.ASK),
        ("src/**", "src/../etc/passwd", Verdict.ASK),
        ("src/**", "/src/a.py", Verdict.ASK),
        ("src/[ab].py", "src/a.py", Verdict.ALLOW),
        ("src/[!ab].py", "src/a.py", Verdict.ASK),
    ],
)
def test_path_globs_for_allow_rules(pattern: str, path: str, verdict: Verdict) -> None:
    rules = parse_rules(allow=[f"write_file({pattern})"])
    assert _path("write_file", path, rules) is verdict


def test_deny_path_rules_see_through_dot_dot() -> None:
    rules = parse_rules(deny=["write_file(secrets/**)"])
    assert _path("write_file", "src/../secrets/key", rules, Level.AUTONOMOUS) is Verdict.DENY
    assert _path("write_file", "./secrets/key", rules, Level.AUTONOMOUS) is Verdict.DENY
    assert _path("write_file", "src/key", rules, Level.AUTONOMOUS) is Verdict.ALLOW


def test_tool_names_are_case_insensitive_and_claude_names_work() -> None:
    rules = parse_rules(deny=["READ(.env)", "Write_File(.env)"])
    assert decide("read_file", {"path": ".env"}, Level.AUTONOMOUS, rules).verdict is Verdict.DENY
    assert _path("write_file", ".env", rules, Level.AUTONOMOUS) is Verdict.DENY


def test_skill_and_search_rules() -> None:
    rules = parse_rules(deny=["load_skill(danger-*)", "grep(private/**)", "glob(private/**)"])
    level = Level.AUTONOMOUS
    assert decide("load_skill", {"name": "danger-zone"}, level, rules).verdict is Verdict.DENY
    assert decide("load_skill", {"name": "python"}, level, rules).verdict is Verdict.ALLOW
    assert decide("grep", {"pattern": "x", "path": "private/a"}, level, rules).verdict is (
        Verdict.DENY
    )
    assert decide("grep", {"pattern": "x"}, level, rules).verdict is Verdict.ALLOW
    assert decide("glob", {"pattern": "private/**/*.key"}, level, rules).verdict is Verdict.DENY
