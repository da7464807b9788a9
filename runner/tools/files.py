"""The file tools: read_file, write_file (atomic), edit_file (one exact match), list_dir."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from runner.tools.base import Change, ChangeKind, ToolError, ToolResult
from runner.tools.workspace import Workspace

MAX_READ_BYTES = 256 * 1024  # text shown per read_file call
DEFAULT_READ_LINES = 2000
MAX_LINE_CHARS = 2000  # a longer line is shown cut
# Past this size the lines after those shown are not counted (the size is given instead).
COUNT_LINES_UP_TO = 32 * 1024 * 1024
MAX_EDIT_BYTES = 16 * 1024 * 1024
SNIFF_BYTES = 8192
MAX_LIST_ENTRIES = 1000


def looks_binary(head: bytes) -> bool:
    return b"\0" in head


# --- read_file ---------------------------------------------------------------------------


@dataclass
class _Shown:
    lines: list[str] = field(default_factory=list)
    first: int = 0
    last: int = 0
    total: int | None = None  # None when the file was too big to count
    more: bool = False
    past_end: bool = False


async def read_file(
    workspace: Workspace, path: str, offset: int | None, limit: int | None
) -> ToolResult:
    real = workspace.resolve(path, write=False)
    rel = workspace.relative(real)
    info = _regular_file(real, path)
    start = offset or 1
    count = limit or DEFAULT_READ_LINES
    if info.st_size == 0:
        return ToolResult(f"(empty file: {rel})")
    with real.open("rb") as stream:
        if looks_binary(stream.read(SNIFF_BYTES)):
            raise ToolError(
                f"{rel} is a binary file ({info.st_size} bytes); read_file only shows text"
            )
    read = functools.partial(_read_lines, real, start, count, info.st_size)
    shown = await asyncio.to_thread(read) if info.st_size > MAX_READ_BYTES else read()
    if shown.past_end:
        raise ToolError(f"offset {start} is past the end of {rel}, which has {shown.total} lines")
    text = "\n".join(shown.lines)
    if shown.more:
        where = f"of {shown.total}" if shown.total is not None else f"of a {info.st_size}-byte file"
        text += (
            f"\n[showing lines {shown.first}-{shown.last} {where}; "
            f"read on with offset={shown.last + 1}]"
        )
    elif shown.first > 1:
        text += f"\n[showing lines {shown.first}-{shown.last}, the end of the file]"
    return ToolResult(text)


def _regular_file(real: Path, path: str) -> os.stat_result:
    try:
        info = real.stat()
    except FileNotFoundError:
        raise ToolError(f"{path}: no such file") from None
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{path} is a folder, not a file; use list_dir to see what it holds")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{path} is not a regular file (a device, socket or pipe)")
    return info


def _read_lines(real: Path, start: int, count: int, size: int) -> _Shown:
    shown = _Shown(first=start)
    budget = MAX_READ_BYTES
    number = 0
    with real.open("rb") as stream:
        while True:
            raw, longer = _next_line(stream)
            if not raw:
                break
            number += 1
            if number < start:
                continue
            if shown.more:
                if size > COUNT_LINES_UP_TO:
                    break
                continue
            if len(shown.lines) >= count or budget <= 0:
                shown.more = True
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if longer or len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + " [... line cut ...]"
            line = line[: max(budget, 0)]
            budget -= len(line.encode()) + 8
            shown.lines.append(f"{number:>6}\t{line}")
            shown.last = number
    if not shown.more or size <= COUNT_LINES_UP_TO:
        shown.total = number
    shown.past_end = not shown.lines and number < start
    return shown


def _next_line(stream: BinaryIO) -> tuple[bytes, bool]:
    """The next line, cut at MAX_LINE_CHARS * 4 bytes, and whether it was longer."""
    cap = MAX_LINE_CHARS * 4
    raw = stream.readline(cap)
    if len(raw) < cap or raw.endswith(b"\n"):
        return raw, False
    while True:  # skip the rest of a very long line without holding it
        rest = stream.readline(1 << 20)
        if not rest or rest.endswith(b"\n"):
            return raw, True


# --- write_file and edit_file ----------------------------------------------------------


def write_file(workspace: Workspace, path: str, content: str) -> ToolResult:
    real = workspace.resolve(path, write=True)
    rel = workspace.relative(real)
    if real.is_dir():
        raise ToolError(f"{path} is a folder; give the path of a file to write")
    data = _encode(content, "content")
    existed = real.exists()
    workspace.check_limits(rel, len(data))
    atomic_write(real, data)
    workspace.record(rel, len(data))
    kind: ChangeKind = "modified" if existed else "created"
    verb = "replaced" if existed else "created"
    return ToolResult(f"{verb} {rel} ({len(data)} bytes)", changes=[Change(rel, kind, len(data))])


def edit_file(workspace: Workspace, path: str, old: str, new: str, replace_all: bool) -> ToolResult:
    real = workspace.resolve(path, write=True)
    rel = workspace.relative(real)
    if not real.exists():
        raise ToolError(f"{path}: no such file; use write_file to create a file")
    info = _regular_file(real, path)
    if info.st_size > MAX_EDIT_BYTES:
        raise ToolError(f"{rel} is {info.st_size} bytes, too big for edit_file; use bash")
    if not old:
        raise ToolError("old_string is empty; to write a whole file use write_file")
    if old == new:
        raise ToolError("old_string and new_string are the same: nothing would change")
    raw = real.read_bytes()
    if looks_binary(raw[:SNIFF_BYTES]):
        raise ToolError(f"{rel} is a binary file; edit_file only edits text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{rel} is not UTF-8 text; edit_file only edits UTF-8 (use bash)") from None
    matches = text.count(old)
    if matches == 0 and "\r\n" in text and "\n" in old and "\r" not in old:
        # A file with Windows line ends, and strings the model wrote with "\n".
        crlf_old, crlf_new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
        if text.count(crlf_old):
            old, new, matches = crlf_old, crlf_new, text.count(crlf_old)
    if matches == 0:
        raise ToolError(
            f"old_string not found in {rel}; read the file again and copy the text exactly, "
            "whitespace and indentation included"
        )
    if matches > 1 and not replace_all:
        raise ToolError(
            f"old_string matches {matches} times in {rel}; give more context or replace_all"
        )
    line = text.count("\n", 0, text.index(old)) + 1
    data = _encode(
        text.replace(old, new) if replace_all else text.replace(old, new, 1), "new_string"
    )
    # What counts toward max_diff_bytes is the change: the bytes taken out and put in.
    diff = (len(old.encode()) + len(new.encode())) * matches
    workspace.check_limits(rel, diff)
    atomic_write(real, data)
    workspace.record(rel, diff)
    what = f"{matches} occurrences" if matches > 1 else f"1 occurrence (line {line})"
    return ToolResult(
        f"edited {rel}: replaced {what}", changes=[Change(rel, "modified", len(data))]
    )


def _encode(text: str, name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"{name} cannot be written as UTF-8: {exc.reason}") from None


def atomic_write(target: Path, data: bytes) -> None:
    """Writes a temporary file next to `target`, syncs it and renames it over `target`.

    A reader sees the old file or the new one whole, never a part; parent folders are
    created (`target` has been confined to the workspace, so they are inside it).
    """
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ToolError(f"cannot create the folder {folder.name}: a file is in the way") from None
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:100]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Makes the rename itself durable."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@functools.cache
def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


# --- list_dir ------------------------------------------------------------------------------


def list_dir(workspace: Workspace, path: str) -> ToolResult:
    # A folder's names are not its files' contents: the read globs are not applied here.
    real = workspace.locate(path)
    rel = workspace.relative(real)
    if not real.exists():
        raise ToolError(f"{path}: no such folder")
    if not real.is_dir():
        raise ToolError(f"{path} is a file, not a folder; use read_file to read it")
    with os.scandir(real) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    if not entries:
        return ToolResult(f"{rel}/ is empty")
    count = f"{len(entries)} entries" if len(entries) > 1 else "1 entry"
    lines = [f"{rel}/ ({count})"]
    for entry in entries[:MAX_LIST_ENTRIES]:
        lines.append(_describe(workspace, entry))
    if len(entries) > MAX_LIST_ENTRIES:
        lines.append(
            f"[... {len(entries) - MAX_LIST_ENTRIES} more entries not shown; use glob to narrow]"
        )
    return ToolResult("\n".join(lines))


def _describe(workspace: Workspace, entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_symlink():
            target = os.readlink(entry.path)
            real = Path(entry.path).resolve()
            if not real.is_relative_to(workspace.root):
                return f"{entry.name} -> {target} (outside the workspace: not usable)"
            suffix = "/" if real.is_dir() else ""
            return f"{entry.name}{suffix} -> {target}"
        if entry.is_dir():
            if entry.name == ".git":
                return ".git/ (git metadata)"
            return f"{entry.name}/"
        return f"{entry.name}  ({entry.stat().st_size} bytes)"
    except (OSError, RuntimeError):
        return f"{entry.name}  (cannot be read)"
