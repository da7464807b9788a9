"""Path globs over workspace-relative POSIX paths: `*`, `?`, `[...]` within a name, `**` across.

fnmatch alone lets `*` cross `/`; here each name is matched on its own and `**` stands
for any number of whole names (none included), so `src/**` covers everything under src
and `**/*.py` every Python file at any depth.
"""

from __future__ import annotations

from fnmatch import fnmatchcase


def split(pattern: str) -> tuple[str, ...]:
    """The names, with empty ones (`a//b`, a trailing `/`), `.` and repeated `**` dropped."""
    names: list[str] = []
    for part in pattern.split("/"):
        if part in ("", ".") or (part == "**" and names[-1:] == ["**"]):
            continue
        names.append(part)
    return tuple(names)


def is_magic(name: str) -> bool:
    return any(char in name for char in "*?[")


def match(pattern: str, path: str) -> bool:
    """Whether the relative POSIX `path` matches `pattern` as a whole."""
    return _match(split(pattern), split(path))


def match_any(patterns: tuple[str, ...], path: str) -> bool:
    return any(match(pattern, path) for pattern in patterns)


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[start:]) for start in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], head) and _match(rest, path[1:])
