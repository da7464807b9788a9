"""The policy's entry point: one tool call in, one decision out.

The order, for every tool: built-in deny and deny rules (deny always wins), then ask rules,
then allow rules and pre-approvals (which allow within the level: they never lift a deny and
never let STUDENT write), then the level:

- STUDENT: read-only tools run, everything else is denied.
- INTERN: read-only tools run, every write and every command asks.
- SUPERVISED: read-only tools and the default allow-list run, the rest asks.
- AUTONOMOUS: everything not denied runs.

Bash lines are judged part by part (see `bash_judge`); what cannot be judged asks at any level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.policy.bash_judge import Context, judge_bash
from runner.policy.builtin_deny import name_of
from runner.policy.paths import for_allow, for_deny, glob_matches
from runner.policy.rules import Rule, Rules, compile_many
from runner.policy.shell_lexer import ShellSyntaxError, Word, lex
from runner.policy.tools import KNOWN_TOOLS, READ_ONLY_TOOLS, subject
from runner.policy.verdicts import Decision, Level, allow, ask, deny


def decide(
    tool: str,
    tool_input: Mapping[str, Any],
    level: Level,
    rules: Rules,
    *,
    denylisted_commands: Sequence[str] = (),
    pre_approved: Sequence[str] = (),
) -> Decision:
    """Judges one tool call. Deny and ask rules must be valid (see `parse_rules`); a malformed
    pre-approval grants nothing rather than failing the call."""
    if tool not in KNOWN_TOOLS:
        return deny(f"deny: unknown tool {tool!r}")
    deny_rules = _for_tool(compile_many(rules.deny, strict=True), tool)
    ask_rules = _for_tool(compile_many(rules.ask, strict=True), tool)
    allow_rules = _for_tool(compile_many(rules.allow, strict=False), tool)
    granted = _for_tool(compile_many(pre_approved, strict=False), tool)
    if tool == "bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return deny("deny: bash needs a command string")
        for rule in deny_rules:
            if rule.any_call:
                return deny(f"deny: {rule.source}")
        ctx = Context(
            level=level,
            deny=deny_rules,
            ask=ask_rules,
            allow=allow_rules,
            pre_approved=granted,
            denylist=_denylist(denylisted_commands),
        )
        return judge_bash(command, ctx)
    return _decide_path_tool(tool, tool_input, level, deny_rules, ask_rules, allow_rules, granted)


def _decide_path_tool(
    tool: str,
    tool_input: Mapping[str, Any],
    level: Level,
    deny_rules: tuple[Rule, ...],
    ask_rules: tuple[Rule, ...],
    allow_rules: tuple[Rule, ...],
    granted: tuple[Rule, ...],
) -> Decision:
    value = subject(tool, tool_input)
    read_only = tool in READ_ONLY_TOOLS
    # A skill name is no path; paths are matched resolved (deny, ask) or only when plain (allow).
    strict_form = value if tool == "load_skill" or value is None else for_deny(value)
    plain_form = value if tool == "load_skill" or value is None else for_allow(value)
    for rule in deny_rules:
        if _matches(rule, strict_form):
            return deny(f"deny: {rule.source}")
    if level is Level.STUDENT and not read_only:
        return deny(f"level STUDENT: {tool} is not a read-only tool")
    for rule in ask_rules:
        if _matches(rule, strict_form):
            return ask(f"ask: {rule.source}")
    for rules, label in ((allow_rules, "allow"), (granted, "pre-approved")):
        for rule in rules:
            if _matches(rule, plain_form):
                return allow(f"{label}: {rule.source}")
    if read_only:
        return allow(f"level {level.name}: {tool} is read-only")
    if level is Level.AUTONOMOUS:
        return allow("level AUTONOMOUS: not denied")
    if level is Level.INTERN:
        return ask(f"level INTERN: {tool} asks")
    return ask(f"level SUPERVISED: {tool} is not in the allow-list")


def _matches(rule: Rule, value: str | None) -> bool:
    if rule.any_call:
        return True
    return value is not None and rule.glob is not None and glob_matches(rule.glob, value)


def _for_tool(rules: tuple[Rule, ...], tool: str) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if rule.tool == tool)


def _denylist(commands: Sequence[str]) -> tuple[str, ...]:
    """Each denylisted command as the judge compares commands: quotes removed, bare argv[0]."""
    out: list[str] = []
    for command in commands:
        try:
            words = [token for token in lex(command) if isinstance(token, Word)]
        except ShellSyntaxError:
            words = [Word(text) for text in command.split()]
        if words:
            out.append(" ".join([name_of(words[0]), *(word.text for word in words[1:])]))
    return tuple(out)
