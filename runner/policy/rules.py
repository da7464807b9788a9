"""Permission rules in Claude Code's syntax: `tool` or `tool(pattern)`.

- `bash(git status)` matches exactly that simple command; `bash(git status:*)` matches it
  followed by nothing or by a space and anything. Commands are compared after normalization
  (quotes removed, words joined by one space, wrappers unwrapped), so spacing and quoting do not
  matter. An exact pattern that is a whole compound line (`bash(make && make test)`, as an
  "always" approval records it) matches that exact line.
- Path tools take a glob (`write_file(src/**)`): `**` spans directories, `*` does not.
- `load_skill(name)` takes a glob on the skill's name.
Tool names are case-insensitive; Claude Code's `Read`, `Write`, `Edit` and `LS` are accepted too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runner.policy.paths import GlobError, compile_glob
from runner.policy.shell_lexer import Word
from runner.policy.shell_parser import parse
from runner.policy.tools import KNOWN_TOOLS, TOOL_ALIASES

_RULE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", re.DOTALL)


class RuleError(ValueError):
    """A malformed rule; the message names each bad rule and what is wrong with it."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Rules:
    """The rules of a task (config and task file merged); build it with `parse_rules`."""

    allow: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    source: str  # as written, for the decision's rule text
    tool: str  # canonical tool name
    any_call: bool = False  # `bash`, `bash(*)`: every call of the tool
    words: str | None = None  # bash: the normalized simple command of the pattern
    prefix: bool = False  # bash: a `:*` pattern
    whole: str | None = None  # bash: an exact pattern, compared with the whole command line
    glob: str | None = None  # path tools and load_skill: the glob

    def matches_words(self, text: str, *, exact_allowed: bool = True) -> bool:
        """Whether a normalized simple command matches this bash rule."""
        if self.any_call:
            return True
        if self.words is None:
            return False
        if self.prefix:
            return text == self.words or text.startswith(self.words + " ")
        return exact_allowed and text == self.words

    def matches_line(self, line: str) -> bool:
        """Whether a whole command line is this rule's exact pattern."""
        return self.whole is not None and line.strip() == self.whole


def parse_rules(
    allow: Iterable[str] = (), ask: Iterable[str] = (), deny: Iterable[str] = ()
) -> Rules:
    """Validates every rule; raises RuleError listing every problem found."""
    problems: list[str] = []
    lists: dict[str, tuple[str, ...]] = {}
    for kind, rules in (("allow", allow), ("ask", ask), ("deny", deny)):
        kept: list[str] = []
        for rule in rules:
            if not isinstance(rule, str):
                problems.append(f"{kind} rule {rule!r}: a rule must be a string")
                continue
            try:
                compile_rule(rule)
            except RuleError as exc:
                problems.append(f"{kind} rule {exc}")
                continue
            kept.append(rule.strip())
        lists[kind] = tuple(kept)
    if problems:
        raise RuleError(problems)
    return Rules(allow=lists["allow"], ask=lists["ask"], deny=lists["deny"])


@functools.lru_cache(maxsize=1024)
def compile_rule(source: str) -> Rule:
    """The parsed rule; raises RuleError naming it. Cached: rules are judged on every call."""
    match = _RULE.fullmatch(source)
    if match is None:
        if "(" in source and not source.rstrip().endswith(")"):
            raise RuleError([f"{source!r}: missing ')' at the end"])
        raise RuleError([f"{source!r}: expected tool or tool(pattern)"])
    name, pattern = match.group(1).lower(), match.group(2)
    tool = TOOL_ALIASES.get(name, name)
    if tool not in KNOWN_TOOLS:
        known = ", ".join(sorted(KNOWN_TOOLS))
        raise RuleError([f"{source!r}: unknown tool {match.group(1)!r} (known: {known})"])
    if pattern is None or pattern.strip() == "*":
        return Rule(source.strip(), tool, any_call=True)
    pattern = pattern.strip()
    if not pattern:
        raise RuleError([f"{source!r}: empty pattern; write {tool} alone for every call"])
    if tool == "bash":
        return _bash_rule(source.strip(), pattern)
    return _glob_rule(source.strip(), tool, pattern)


def _bash_rule(source: str, pattern: str) -> Rule:
    prefix = pattern.endswith(":*")
    body = pattern[:-2].strip() if prefix else pattern
    if not body:
        raise RuleError([f"{source!r}: empty command before ':*'"])
    script = parse(body)
    simple = script.pipelines[0][0] if len(script.pipelines) == 1 else None
    single = (
        script.error is None
        and not script.notes
        and simple is not None
        and len(script.pipelines[0]) == 1
        and not simple.redirects
        and all(not word.subs for word in simple.words)
    )
    if prefix and not single:
        raise RuleError(
            [f"{source!r}: a ':*' pattern must be one simple command (no ;, &&, |, >, $(...))"]
        )
    if ":*" in body:
        raise RuleError([f"{source!r}: ':*' is only allowed at the end of the pattern"])
    words = _normal(simple.words) if single and simple is not None else None
    return Rule(source, "bash", words=words, prefix=prefix, whole=None if prefix else body)


def _glob_rule(source: str, tool: str, pattern: str) -> Rule:
    if tool != "load_skill":
        if pattern.startswith(("/", "~")) or ".." in pattern.split("/"):
            raise RuleError(
                [f"{source!r}: paths are relative to the workspace (no leading / or ~, no ..)"]
            )
        while pattern.startswith("./"):
            pattern = pattern[2:]
    try:
        compile_glob(pattern)
    except GlobError as exc:
        raise RuleError([f"{source!r}: bad pattern: {exc}"]) from exc
    return Rule(source, tool, glob=pattern)


def _normal(words: Sequence[Word]) -> str:
    return " ".join(word.text for word in words)


def compile_many(sources: Iterable[str], *, strict: bool) -> tuple[Rule, ...]:
    """Compiled rules; a malformed one raises when strict, else grants nothing (fails closed)."""
    rules: list[Rule] = []
    for source in sources:
        try:
            rules.append(compile_rule(source))
        except (RuleError, TypeError):
            if strict:
                raise
    return tuple(rules)
