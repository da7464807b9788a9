"""The pid file, held locked for as long as the daemon runs: a second daemon on the
same state sees the lock and refuses, and a crash releases it by itself."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class PidLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid written by whoever holds the lock, if readable."""
        try:
            return int(self._path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        os.close(self._fd)
        self._fd = None
