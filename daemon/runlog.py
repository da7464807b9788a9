"""A runner's output: rotated log files on disk plus a ring buffer in memory.

Offsets are logical: byte N of everything the runner ever wrote to this log,
counted across rotations, so a tail can resume where it stopped even after the
file it was reading has been renamed to a backup. Each file remembers the
logical offset of its first byte; that is all it takes to map an offset to a
file and a position in it.

The ring buffer serves the recent past (what tails and followers ask for) without
touching the disk, and keeps the log working when the disk does not. Everything
here runs on the event loop's thread: write() wakes followers through an
asyncio.Event, which is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

log = logging.getLogger(__name__)


class OffsetGone(Exception):
    """The offset was rotated away (or dropped from the ring); the servicer answers OUT_OF_RANGE."""

    def __init__(self, offset: int, start: int, end: int) -> None:
        super().__init__(
            f"offset {offset} is no longer kept; available offsets are {start} to {end}"
        )
        self.offset = offset
        self.start = start
        self.end = end


class RunnerLog:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        ring_bytes: int = 256 * 1024,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        if max_bytes <= 0 or backups < 0 or ring_bytes < 0:
            raise ValueError(
                f"max_bytes must be > 0, backups and ring_bytes >= 0 "
                f"(got {max_bytes}, {backups}, {ring_bytes})"
            )
        self.path = path
        # Applied to everything written, so no copy on disk or in memory holds a secret.
        self._redact = redact
        self._max_bytes = max_bytes
        self._backups = backups
        self._ring_bytes = ring_bytes
        self._ring = bytearray()
        # _bases[0] is the current file's first logical offset, _bases[k] that of backup .k.
        # Empty once the disk failed: the files no longer match the logical log.
        self._bases: list[int] = []
        self._file: io.FileIO | None = None
        self._size = 0
        self._closed = False
        self._changed = asyncio.Event()

        sizes = [_size_of(path)]
        for k in range(1, backups + 1):
            size = _size_of(self._file_path(k))
            if size is None:
                # A gap means anything older does not continue this log.
                break
            sizes.append(size)
        total = sum(size or 0 for size in sizes)
        self._end = total
        base = total
        for size in sizes:
            base -= size or 0
            self._bases.append(base)
        self._size = sizes[0] or 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered, so readers see every byte at once and a full disk fails here.
            self._file = io.FileIO(path, "ab")
        except OSError as error:
            self._disk_failed(error)

    @property
    def end(self) -> int:
        return self._end

    @property
    def start(self) -> int:
        ring_start = self._end - len(self._ring)
        return min(self._bases[-1], ring_start) if self._bases else ring_start

    def write(self, data: bytes) -> None:
        if not data or self._closed:
            return
        if self._redact is not None:
            data = self._redact(data)
        if self._file is not None:
            try:
                if self._size > 0 and self._size + len(data) > self._max_bytes:
                    self._rotate()
                _write_all(self._file, data)
                self._size += len(data)
            except OSError as error:
                self._disk_failed(error)
        self._end += len(data)
        if self._ring_bytes:
            self._ring += data[-self._ring_bytes :]
            # bytearray drops a prefix without copying the rest, so this stays cheap.
            del self._ring[: max(0, len(self._ring) - self._ring_bytes)]
        self._wake()

    def read(self, offset: int, max_bytes: int = 64 * 1024) -> tuple[int, bytes]:
        """Up to `max_bytes` from `offset` on, from the ring where it reaches back far enough."""
        offset = self._resolve(offset)
        position = offset
        parts: list[bytes] = []
        wanted = max_bytes
        ring_start = self._end - len(self._ring)
        while wanted > 0 and position < self._end:
            if position >= ring_start:
                begin = position - ring_start
                part = bytes(self._ring[begin : begin + wanted])
            else:
                part = self._read_file(offset, position, wanted)
            parts.append(part)
            position += len(part)
            wanted -= len(part)
        return offset, b"".join(parts)

    async def follow(self, offset: int) -> AsyncIterator[tuple[int, bytes]]:
        """Existing data from `offset`, then new data as written; ends after close().

        Raises OffsetGone when the consumer falls so far behind that its offset
        is rotated away before it reads it.
        """
        position = self._resolve(offset)
        while True:
            # Taken before the read, so a write between the read and the wait still wakes us.
            changed = self._changed
            at, data = self.read(position)
            if data:
                yield at, data
                position = at + len(data)
            elif self._closed:
                return
            else:
                await changed.wait()

    async def pump(self, stream: asyncio.StreamReader, prefix: bytes = b"") -> None:
        """Copies `stream` into the log until EOF; `prefix` (if any) starts every line."""
        line_start = True
        while chunk := await stream.read(65536):
            if prefix:
                tagged = chunk.replace(b"\n", b"\n" + prefix)
                if chunk.endswith(b"\n"):
                    # The next line's prefix goes out with the next line, not before it exists.
                    tagged = tagged[: -len(prefix)]
                chunk = (prefix + tagged) if line_start else tagged
                line_start = chunk.endswith(b"\n")
            self.write(chunk)

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError as error:
                log.warning("closing runner log %s: %s", self.path, error)
            self._file = None
        self._wake()

    def _resolve(self, offset: int) -> int:
        if offset < 0:
            return max(self._end + offset, self.start)
        if offset > self._end:
            raise ValueError(f"offset {offset} is past the end of the log ({self._end})")
        if offset < self.start:
            raise OffsetGone(offset, self.start, self._end)
        return offset

    def _read_file(self, offset: int, position: int, wanted: int) -> bytes:
        for k, base in enumerate(self._bases):
            if base <= position:
                file_end = self._bases[k - 1] if k else self._end
                try:
                    with open(self._file_path(k), "rb") as file:
                        file.seek(position - base)
                        data = file.read(min(wanted, file_end - position))
                except OSError as error:
                    log.warning("reading runner log %s: %s", self._file_path(k), error)
                    data = b""
                if data:
                    return data
                break
        # Someone removed or truncated the file under us: those bytes are gone.
        raise OffsetGone(offset, self._end - len(self._ring), self._end)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        if self._backups == 0:
            self._file = io.FileIO(self.path, "wb")
            self._bases = [self._end]
        else:
            for k in range(self._backups - 1, 0, -1):
                if self._file_path(k).exists():
                    os.replace(self._file_path(k), self._file_path(k + 1))
            os.replace(self.path, self._file_path(1))
            self._file = io.FileIO(self.path, "ab")
            self._bases = [self._end, *self._bases][: self._backups + 1]
        self._size = 0

    def _disk_failed(self, error: OSError) -> None:
        log.warning(
            "runner log %s: %s; keeping only the last %d bytes in memory from now on",
            self.path,
            error,
            self._ring_bytes,
        )
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self._bases = []

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _file_path(self, k: int) -> Path:
        return self.path if k == 0 else self.path.with_name(f"{self.path.name}.{k}")


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _write_all(file: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(f"short write to {file.name}")
        view = view[written:]
