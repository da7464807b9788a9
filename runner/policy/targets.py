"""Which path a command's operand names, and whether destroying it would be a catastrophe.

Operands are judged as the shell would see them: `//`, `/.`, `/usr/..` and `/*` all mean `/`;
`$HOME`, `${HOME}` and `~` mean the home directory; a relative operand is resolved against the
directory an earlier `cd` in the same line moved to (`cd / && rm -rf usr` removes /usr).
"""

from __future__ import annotations

import enum
import re

from runner.policy.shell_lexer import Word

# The directory a relative operand is relative to: "" for the workspace, a path after a
# `cd`, or None once a `cd` went somewhere that cannot be known (`cd "$X"`, `cd -`, `popd`).
Cwd = str | None

_HOME = re.compile(r"^(?:\$HOME|\$\{HOME\})(?=/|$)")
# Trailing components that only select what is inside the directory before them.
_SELECT_ALL = frozenset({"*", ".*", "*.*", "**", "{*,.*}"})
_GLOB_CHARS = re.compile(r"[*?\[]")


class Target(enum.Enum):
    SYSTEM = "system"  # /, a top-level directory, the home directory, above the workspace
    WORKSPACE = "workspace"  # the whole workspace (`.`, `*`)
    OTHER = "other"  # a path inside the workspace or deep in the system
    UNKNOWN = "unknown"  # an expansion or substitution decides it at run time


def home_normal(text: str) -> str:
    """`$HOME/x` and `${HOME}/x` written as `~/x`."""
    return _HOME.sub("~", text)


def effective(word: Word, cwd: Cwd) -> str | None:
    """The operand as a path from the workspace (or absolute, or ~), None if unknowable."""
    if word.subs:
        return None
    text = home_normal(word.text)
    if "$" in text and word.expands:
        return None
    if text.startswith(("/", "~")):
        return text
    if cwd is None:
        return None
    return f"{cwd}/{text}" if cwd else text


def classify(word: Word, cwd: Cwd) -> Target:
    path = effective(word, cwd)
    if path is None:
        return Target.UNKNOWN
    if path.startswith("/"):
        root, rest = "/", path[1:]
    elif path.startswith("~"):
        root, _, rest = path.partition("/")
        root = "~"
    else:
        root, rest = ".", path
    parts: list[str] = []
    for part in rest.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part == ".." and root == "/":
            continue  # /.. is /
        else:
            parts.append(part)
    while parts and parts[-1] in _SELECT_ALL:
        parts.pop()
    if root == "/":
        if len(parts) <= 1 or _GLOB_CHARS.search(parts[0]):
            return Target.SYSTEM
        return Target.OTHER
    if root == "~":
        if not parts or parts[0] == ".." or (len(parts) == 1 and _GLOB_CHARS.search(parts[0])):
            return Target.SYSTEM
        return Target.OTHER
    if not parts:
        return Target.WORKSPACE
    if parts[0] == ".." or parts[0] == ".*":
        return Target.SYSTEM  # above the workspace; `.*` also matches `..` in many shells
    return Target.OTHER


def change_dir(cwd: Cwd, args: list[Word]) -> Cwd:
    """The directory after `cd ARGS` (or `pushd`) from cwd."""
    operands = [word for word in args if not word.text.startswith("-") or word.text == "-"]
    if not operands:
        return "~"
    target = operands[0]
    if target.text == "-" or (target.opaque and not _HOME.match(target.text)):
        return None
    text = home_normal(target.text)
    if text.startswith(("/", "~")):
        return text
    if cwd is None:
        return None
    return f"{cwd}/{text}" if cwd else text


def inside_workspace(word: Word, cwd: Cwd) -> bool:
    """Whether an operand certainly names something inside the workspace (for allow-lists)."""
    path = effective(word, cwd)
    if path is None or path.startswith(("/", "~")):
        return False
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True
