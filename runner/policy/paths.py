"""Path normalization and the glob syntax of path rules (`write_file(src/**)`).

Paths are relative to the workspace; the tools confine them. The policy only matches them, and
matches differently for the two directions: a deny or ask rule must catch `src/../secrets/x`
(so `..` is resolved first), while an allow rule must never be satisfied by a path that leaves
the workspace or is written in a roundabout way (so such a path matches no allow rule at all).
"""

from __future__ import annotations

import functools
import posixpath
import re


class GlobError(ValueError):
    """A path pattern that cannot be compiled."""


def for_allow(path: str) -> str | None:
    """The path an allow rule is matched against, or None when no allow rule may match it."""
    if not path or path.startswith(("/", "~")):
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts) or "."


def for_deny(path: str) -> str:
    """The path deny and ask rules are matched against: `..` resolved lexically."""
    if not path:
        return "."
    normal = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it a meaning); a single "/" is what it means here.
    return re.sub("^/+", "/", normal)


@functools.lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """`**` spans directories, `*` and `?` stay within one, `[...]` is a character class."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("/**", i) and i + 3 == n:
            out.append("(?:/.*)?")  # `src/**`: everything under src (and src itself)
            i += 3
        elif pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")  # zero or more whole directories
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            start = i + 1
            negate = pattern[start : start + 1] in ("!", "^")
            start += negate
            # A "]" right after the opening (or its negation) is a member, as in fnmatch.
            end = pattern.find("]", start + 1 if pattern[start : start + 1] == "]" else start)
            if end < 0:
                raise GlobError(f"unclosed '[' at position {i}")
            body = pattern[start:end].replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise GlobError(str(exc)) from exc


def glob_matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None
