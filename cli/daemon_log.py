"""Reading the daemon's log file: its tail, and following it as it grows."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

_BLOCK = 64 * 1024


def tail_lines(path: Path, count: int) -> list[bytes]:
    """The last `count` lines of the file (each with its newline), read from the end."""
    if count <= 0:
        return []
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        data = b""
        position = end
        # One more newline than lines wanted: the last line usually ends with one.
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    return data.splitlines(keepends=True)[-count:]


def lines_since(path: Path, offset: int, count: int) -> list[bytes]:
    """The last `count` lines written at or after byte `offset`."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return []
    return data.splitlines(keepends=True)[-count:]


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def follow(path: Path, offset: int, poll_seconds: float = 0.25) -> None:
    """Copies what is appended to the file from `offset` to stdout, until interrupted.

    Starts over from the beginning when the file is replaced or truncated (rotation).
    """
    out = sys.stdout.buffer
    inode: int | None = None
    while True:
        try:
            stat = path.stat()
        except FileNotFoundError:
            time.sleep(poll_seconds)
            continue
        if inode is not None and (stat.st_ino != inode or stat.st_size < offset):
            offset = 0
        inode = stat.st_ino
        if stat.st_size > offset:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            out.write(chunk)
            out.flush()
        time.sleep(poll_seconds)
