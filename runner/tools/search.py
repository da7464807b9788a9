"""The search tools: glob (paths by pattern) and grep (lines by regular expression).

Both walk the workspace in a worker thread, never follow a symlinked folder (so never
leave the workspace, nor loop), skip `.git`, and stop early when the call is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from runner.tools import globs
from runner.tools.base import ToolError, ToolResult
from runner.tools.files import SNIFF_BYTES, looks_binary
from runner.tools.workspace import Workspace

MAX_GLOB_RESULTS = 1000
MAX_GREP_MATCHES = 500
MAX_GREP_LINE_CHARS = 400
MAX_GREP_FILE_BYTES = 16 * 1024 * 1024
MAX_WALK_ENTRIES = 200_000
SKIPPED_FOLDERS = frozenset({".git"})

T = TypeVar("T")


async def _in_thread(work: Callable[[threading.Event], T]) -> T:
    """Runs `work` in a thread; a cancelled call tells it to stop and does not wait for it."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(work, stop)
    except BaseException:
        stop.set()
        raise


@dataclass
class _Walk:
    """Entries under a folder (relative POSIX paths), with what cut the walk short."""

    workspace: Workspace
    stop: threading.Event
    max_depth: int | None = None
    seen: int = 0
    notes: list[str] = field(default_factory=list)

    def entries(self, start: Path, base: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(relative path, entry) under `start`, whose own relative path is `base`."""
        pending = [(start, "" if base == "." else base + "/")]
        while pending:
            folder, prefix = pending.pop()
            if self.stop.is_set():
                return
            try:
                with os.scandir(folder) as scan:
                    found = list(scan)
            except OSError:
                continue
            for entry in found:
                self.seen += 1
                if self.seen > MAX_WALK_ENTRIES:
                    self.notes.append(
                        f"[the search stopped after {MAX_WALK_ENTRIES} entries; narrow it]"
                    )
                    return
                rel = prefix + entry.name
                if entry.is_symlink():
                    if _inside(self.workspace, entry.path):
                        yield rel, entry  # a symlinked folder is named, never walked
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and entry.name in SKIPPED_FOLDERS:
                    continue
                yield rel, entry
                if is_dir and (self.max_depth is None or rel.count("/") + 1 < self.max_depth):
                    pending.append((Path(entry.path), rel + "/"))


def _inside(workspace: Workspace, path: str) -> bool:
    try:
        return Path(path).resolve().is_relative_to(workspace.root)
    except (OSError, RuntimeError):
        return False


# --- glob ----------------------------------------------------------------------------------


async def glob(workspace: Workspace, pattern: str) -> ToolResult:
    names = globs.split(_relative_pattern(workspace, pattern))
    if not names:
        raise ToolError("pattern is empty: give one such as **/*.py")
    if ".." in names:
        raise ToolError(f"pattern {pattern} contains `..`; glob only searches the workspace")
    # Start the walk at the pattern's literal folders, e.g. src/app for src/app/**/*.py.
    prefix: list[str] = []
    for name in names[:-1]:
        if globs.is_magic(name) or name == "**":
            break
        prefix.append(name)
    start = workspace.locate("/".join(prefix) or ".")
    if not start.is_dir():
        return ToolResult(f"no paths match {pattern}")
    rest = names[len(prefix) :]
    depth = None if "**" in rest else len(names)
    joined = "/".join(names)

    def work(stop: threading.Event) -> tuple[list[str], list[str]]:
        walk = _Walk(workspace, stop, max_depth=depth)
        found: list[str] = []
        for rel, entry in walk.entries(start, "/".join(prefix) or "."):
            if globs.match(joined, rel):
                found.append(rel + "/" if _is_dir(entry) else rel)
        return found, walk.notes

    found, notes = await _in_thread(work)
    if not found:
        return ToolResult("\n".join([f"no paths match {pattern}", *notes]))
    found.sort()
    lines = found[:MAX_GLOB_RESULTS]
    if len(found) > MAX_GLOB_RESULTS:
        lines.append(
            f"[{len(found) - MAX_GLOB_RESULTS} more paths match and are not shown "
            f"({len(found)} in all); narrow the pattern]"
        )
    return ToolResult("\n".join([*lines, *notes]))


def _relative_pattern(workspace: Workspace, pattern: str) -> str:
    if not os.path.isabs(pattern):
        return pattern
    for root in (workspace.given_root, workspace.root):
        prefix = root.as_posix().rstrip("/") + "/"
        if pattern.startswith(prefix):
            return pattern[len(prefix) :]
        if pattern == root.as_posix():
            return "."
    raise ToolError(
        f"pattern {pattern} is outside the workspace ({workspace.given_root}); "
        "give a pattern relative to the workspace"
    )


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# --- grep ----------------------------------------------------------------------------------


async def grep(workspace: Workspace, pattern: str, path: str, file_glob: str | None) -> ToolResult:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    real = workspace.locate(path)
    if not real.exists():
        raise ToolError(f"{path}: no such file or folder")
    if not real.is_dir():
        workspace.resolve(path, write=False)  # a file named outright must be readable
    start_rel = workspace.relative(real)

    def wanted(rel: str) -> bool:
        if file_glob is None:
            return True
        if "/" not in file_glob:
            return globs.match(file_glob, rel.rsplit("/", 1)[-1])
        inner = rel[len(start_rel) + 1 :] if start_rel != "." else rel
        return globs.match(file_glob, rel) or globs.match(file_glob, inner)

    def work(stop: threading.Event) -> tuple[list[str], list[str]]:
        matches: list[str] = []
        notes: list[str] = []
        if real.is_dir():
            walk = _Walk(workspace, stop)
            files = [
                (rel, Path(entry.path))
                for rel, entry in walk.entries(real, start_rel)
                if not _is_dir(entry)
            ]
        else:
            walk = None
            files = [(start_rel, real)]
        too_big = 0
        for rel, file in sorted(files):
            if stop.is_set():
                break
            if not wanted(rel) or not _readable(workspace, rel, file):
                continue
            if not _search_file(file, rel, regex, matches):
                too_big += 1
            if len(matches) >= MAX_GREP_MATCHES:
                notes.append(
                    f"[stopped at {MAX_GREP_MATCHES} matching lines; "
                    "narrow the pattern, path or glob]"
                )
                break
        if too_big:
            notes.append(f"[{too_big} files over {MAX_GREP_FILE_BYTES} bytes were not searched]")
        if walk is not None:
            notes.extend(walk.notes)
        return matches, notes

    matches, notes = await _in_thread(work)
    if not matches:
        return ToolResult("\n".join([f"no matches for {pattern!r}", *notes]))
    return ToolResult("\n".join([*matches[:MAX_GREP_MATCHES], *notes]))


def _readable(workspace: Workspace, rel: str, file: Path) -> bool:
    """The read globs apply to the name searched and, for a symlink, to its target."""
    if not workspace.may_read(rel):
        return False
    if file.is_symlink():
        try:
            return workspace.may_read(workspace.relative(file.resolve()))
        except (OSError, RuntimeError, ValueError):
            return False
    return True


def _search_file(real: Path, rel: str, regex: re.Pattern[str], matches: list[str]) -> bool:
    """Adds the file's matching lines; False when it is too big to be searched.

    Binary files, and what is not a regular file or cannot be read, are skipped quietly.
    """
    try:
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):
            return True
        if info.st_size > MAX_GREP_FILE_BYTES:
            return False
        with real.open("rb") as stream:
            if looks_binary(stream.read(SNIFF_BYTES)):
                return True
            stream.seek(0)
            for number, raw in enumerate(stream, 1):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if regex.search(line):
                    if len(line) > MAX_GREP_LINE_CHARS:
                        line = line[:MAX_GREP_LINE_CHARS] + " [... line cut ...]"
                    matches.append(f"{rel}:{number}: {line}")
                    if len(matches) >= MAX_GREP_MATCHES:
                        break
    except OSError:
        pass
    return True
