"""The default SUPERVISED allow-list: commands that only read, run without asking.

Conservative on purpose. Each entry is a command prefix and a check of its remaining arguments:
options that write, delete or run other programs (`find -delete`, `git diff --output`,
`rg --pre`, `pytest --basetemp`) take a command off the list, as do operands outside the
workspace (`cat ~/.ssh/id_rsa` would read a secret). Redirections, variable expansions and
changed environments are handled by the judge before this list is consulted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runner.policy.shell_lexer import Word
from runner.policy.targets import Cwd, inside_workspace

Check = Callable[[Sequence[Word], Cwd], bool]


def _set(words: str) -> frozenset[str]:
    """A set of options written as one string, which keeps the long lists readable."""
    return frozenset(words.split())


@dataclass(frozen=True)
class AllowEntry:
    command: str  # the prefix, words joined by one space
    check: Check  # True when the arguments after the prefix keep it read-only
    note: str = ""


def _paths_inside(args: Sequence[Word], cwd: Cwd) -> bool:
    """Every operand and --option=value stays inside the workspace."""
    for word in args:
        text = word.text
        if text.startswith("-"):
            if "=" not in text:
                continue
            text = text.split("=", 1)[1]
        if text == "/dev/null":
            continue
        if not inside_workspace(
            Word(text, word.quoted, word.expands, word.globbed, word.subs), cwd
        ):
            return False
    return True


def _without(*forbidden: str) -> Check:
    """Paths inside the workspace and none of the forbidden options (nor `--opt=...`)."""

    def check(args: Sequence[Word], cwd: Cwd) -> bool:
        for word in args:
            name = word.text.split("=", 1)[0]
            if name in forbidden:
                return False
        return _paths_inside(args, cwd)

    return check


def _anything(args: Sequence[Word], cwd: Cwd) -> bool:
    return True


def _nothing(args: Sequence[Word], cwd: Cwd) -> bool:
    return not args


_SEARCH_VALUES = _set(
    "-e -f -g -t -T -A -B -C -m -M -j -d -D --regexp --file --glob --iglob --type --type-not "
    "--max-count --context --after-context --before-context --include --exclude"
)


def _search(args: Sequence[Word], cwd: Cwd) -> bool:
    """grep and rg: the pattern is no path; every file operand must be inside."""
    if any(word.text.split("=", 1)[0] in ("--pre", "--pre-glob") for word in args):
        return False  # rg --pre runs a program on every file
    explicit = any(word.text in ("-e", "-f", "--regexp", "--file") for word in args)
    explicit = explicit or any(word.text.startswith(("--regexp=", "--file=")) for word in args)
    pattern_seen = explicit
    i = 0
    while i < len(args):
        text = args[i].text
        if text in _SEARCH_VALUES:
            pattern_file = text in ("-f", "--file") and i + 1 < len(args)
            if pattern_file and not _paths_inside(args[i + 1 : i + 2], cwd):
                return False
            i += 2
            continue
        if text.startswith("-"):
            if text.startswith("--file=") and not _paths_inside([args[i]], cwd):
                return False
        elif not pattern_seen:
            pattern_seen = True
        elif not _paths_inside([args[i]], cwd):
            return False
        i += 1
    return True


_BRANCH_FLAGS = _set(
    "-a -r -l -v -vv -i --list --all --remotes --verbose --show-current --ignore-case "
    "--color --no-color --column --no-column --abbrev --no-abbrev --omit-empty"
)
_BRANCH_VALUES = _set("--contains --no-contains --merged --no-merged --points-at --sort --format")


def _git_branch(args: Sequence[Word], cwd: Cwd) -> bool:
    """Listing only: no -d/-D/-m/-c/-f/-u, and no name unless it is a --list pattern."""
    listing = any(word.text in ("-l", "--list") for word in args)
    i = 0
    while i < len(args):
        text = args[i].text
        name = text.split("=", 1)[0]
        if name in _BRANCH_VALUES:
            takes_next = "=" not in text and i + 1 < len(args)
            i += 2 if takes_next and not args[i + 1].text.startswith("-") else 1
            continue
        if text.startswith("-") and name not in _BRANCH_FLAGS:
            return False
        if not text.startswith("-") and not listing:
            return False  # `git branch NAME` creates a branch
        i += 1
    return True


_PYTEST_FLAGS = _set(
    "-q -qq -v -vv -vvv -x -s -l --lf --ff --nf --sw --co --collect-only --last-failed "
    "--failed-first --new-first --stepwise --exitfirst --no-header --no-summary --showlocals "
    "--strict-markers --disable-warnings -ra -rA -rf -rs -rx -rE -rp -rP --quiet --verbose"
)
_PYTEST_VALUES = frozenset({"-k", "-m", "-n"})
_PYTEST_LONG_VALUES = ("--tb=", "--maxfail=", "--durations=", "--color=", "-n=")
_PYTEST_ATTACHED = re.compile(r"^-(n\d+|r[a-zA-Z]+)$")


def _pytest(args: Sequence[Word], cwd: Cwd) -> bool:
    """Known harmless options only: others load plugins, write files, or (--basetemp) delete."""
    i = 0
    while i < len(args):
        text = args[i].text
        if text in _PYTEST_VALUES:
            i += 2
            continue
        if text.startswith("-"):
            known = text in _PYTEST_FLAGS or text.startswith(_PYTEST_LONG_VALUES)
            if not known and not _PYTEST_ATTACHED.match(text):
                return False
        elif not _paths_inside([args[i]], cwd):
            return False
        i += 1
    return True


_GIT_READ = _without("--output", "--ext-diff", "-o")

DEFAULT_ALLOW_LIST: tuple[AllowEntry, ...] = (
    AllowEntry("git status", _GIT_READ),
    AllowEntry("git diff", _GIT_READ, "without --output, --ext-diff"),
    AllowEntry("git log", _GIT_READ, "without --output"),
    AllowEntry("git show", _GIT_READ, "without --output"),
    AllowEntry("git branch", _git_branch, "listing only: no -d/-D/-m/-c/-f/-u, no new name"),
    AllowEntry("git rev-parse", _paths_inside),
    AllowEntry("git ls-files", _paths_inside),
    AllowEntry("git blame", _paths_inside),
    AllowEntry("ls", _paths_inside),
    AllowEntry("pwd", _anything),
    AllowEntry("cd", _paths_inside, "inside the workspace; later commands are judged from there"),
    AllowEntry("cat", _paths_inside),
    AllowEntry("head", _paths_inside),
    AllowEntry("tail", _paths_inside),
    AllowEntry("wc", _paths_inside),
    AllowEntry("grep", _search),
    AllowEntry("rg", _search, "without --pre"),
    AllowEntry(
        "find",
        _without(
            "-exec",
            "-execdir",
            "-ok",
            "-okdir",
            "-delete",
            "-fprint",
            "-fprint0",
            "-fprintf",
            "-fls",
        ),
        "without -exec/-execdir/-ok/-okdir/-delete/-fprint*/-fls",
    ),
    AllowEntry("echo", _anything),
    AllowEntry("printf", _anything),
    AllowEntry("which", _anything),
    AllowEntry("true", _anything),
    AllowEntry("false", _anything),
    AllowEntry("test", _anything),
    AllowEntry("[", _anything),
    AllowEntry("[[", _anything),
    AllowEntry("pytest", _pytest, "known harmless options only"),
    AllowEntry("python -m pytest", _pytest, "known harmless options only"),
    AllowEntry("python3 -m pytest", _pytest, "known harmless options only"),
    AllowEntry("make test", _nothing, "exactly, no other target or option"),
)


def allow_listed(words: Sequence[Word], cwd: Cwd) -> AllowEntry | None:
    """The entry that lets this command run, if any (argv[0] as written: no `./git`)."""
    texts = [word.text for word in words]
    for entry in DEFAULT_ALLOW_LIST:
        prefix = entry.command.split(" ")
        if texts[: len(prefix)] == prefix and entry.check(words[len(prefix) :], cwd):
            return entry
    return None
