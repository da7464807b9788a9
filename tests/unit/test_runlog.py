from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.runlog import OffsetGone, RunnerLog


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def open_logs() -> Iterator[list[RunnerLog]]:
    opened: list[RunnerLog] = []
    yield opened
    for runner_log in opened:
        runner_log.close()


def make(
    opened: list[RunnerLog], path: Path, max_bytes: int, backups: int, ring_bytes: int = 256 * 1024
) -> RunnerLog:
    runner_log = RunnerLog(path, max_bytes, backups, ring_bytes)
    opened.append(runner_log)
    return runner_log


def numbered(count: int, width: int = 10) -> list[bytes]:
    """Chunks that say where they belong, so a wrong offset mapping shows up as wrong bytes."""
    return [f"{i:0{width - 1}d}\n".encode() for i in range(count)]


def on_disk(path: Path, backups: int) -> bytes:
    """What the files hold, oldest first."""
    names = [path.with_name(f"{path.name}.{k}") for k in range(backups, 0, -1)] + [path]
    return b"".join(name.read_bytes() for name in names if name.exists())


def read_all(runner_log: RunnerLog, offset: int, max_bytes: int = 64 * 1024) -> bytes:
    data = b""
    while offset < runner_log.end:
        at, chunk = runner_log.read(offset, max_bytes)
        assert at == offset
        assert chunk
        data += chunk
        offset += len(chunk)
    return data


def test_rotation_keeps_count_and_size(logs: Path, open_logs: list[RunnerLog]) -> None:
    path = logs / "runner-0.log"
    runner_log = make(open_logs, path, max_bytes=100, backups=2, ring_bytes=0)
    chunks = numbered(50)
    for chunk in chunks:
        runner_log.write(chunk)
    everything = b"".join(chunks)

    assert runner_log.end == len(everything)
    assert sorted(p.name for p in logs.iterdir()) == [
        "runner-0.log",
        "runner-0.log.1",
        "runner-0.log.2",
    ]
    for name in logs.iterdir():
        assert name.stat().st_size <= 100
    kept = on_disk(path, 2)
    assert len(kept) <= 3 * 100 + 10
    # The oldest backups were dropped: the files hold exactly the tail of the log.
    assert everything.endswith(kept)
    assert runner_log.start == runner_log.end - len(kept)


def test_no_backups_truncates(logs: Path, open_logs: list[RunnerLog]) -> None:
    path = logs / "runner-0.log"
    runner_log = make(open_logs, path, max_bytes=100, backups=0, ring_bytes=0)
    chunks = numbered(25)
    for chunk in chunks:
        runner_log.write(chunk)

    assert [p.name for p in logs.iterdir()] == ["runner-0.log"]
    assert path.read_bytes() == b"".join(chunks[20:])
    assert runner_log.start == 200
    assert read_all(runner_log, runner_log.start) == b"".join(chunks[20:])


def test_one_write_larger_than_max_bytes(logs: Path, open_logs: list[RunnerLog]) -> None:
    path = logs / "runner-0.log"
    runner_log = make(open_logs, path, max_bytes=10, backups=1, ring_bytes=0)
    runner_log.write(b"abc")
    runner_log.write(b"x" * 25)
    runner_log.write(b"def")

    assert path.with_name("runner-0.log.1").read_bytes() == b"x" * 25
    assert path.read_bytes() == b"def"
    assert read_all(runner_log, runner_log.start) == b"x" * 25 + b"def"
    with pytest.raises(OffsetGone):
        runner_log.read(0)


@pytest.mark.parametrize("ring_bytes", [0, 64, 256 * 1024])
def test_read_across_rotation_boundary(
    logs: Path, open_logs: list[RunnerLog], ring_bytes: int
) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 100, 3, ring_bytes)
    chunks = numbered(35)
    for chunk in chunks:
        runner_log.write(chunk)
    everything = b"".join(chunks)

    # Files rotate every 100 bytes: 95..125 spans .3 and .2, 195..225 spans .2 and .1.
    assert runner_log.read(195, 30) == (195, everything[195:225])
    assert runner_log.read(95, 30) == (95, everything[95:125])
    assert read_all(runner_log, runner_log.start, max_bytes=7) == everything[runner_log.start :]
    assert runner_log.start == 0
    assert runner_log.read(runner_log.end) == (runner_log.end, b"")


def test_ring_buffer_is_bounded(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 10_000, 1, ring_bytes=64)
    for chunk in numbered(30):
        runner_log.write(chunk)
    runner_log.write(b"y" * 1000)

    assert len(runner_log._ring) == 64
    assert runner_log.read(-64) == (runner_log.end - 64, b"y" * 64)


def test_negative_offsets(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 100, 1, ring_bytes=0)
    chunks = numbered(30)
    for chunk in chunks:
        runner_log.write(chunk)
    everything = b"".join(chunks)

    assert runner_log.read(-5) == (295, everything[-5:])
    assert runner_log.read(-25, 10) == (275, everything[275:285])
    # Further back than what is kept: clamped to the oldest byte, never an error.
    assert runner_log.read(-10_000, 10) == (100, everything[100:110])


def test_rotated_away_offset_is_gone(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 100, 1, ring_bytes=50)
    for chunk in numbered(31):
        runner_log.write(chunk)

    assert runner_log.start == 200
    with pytest.raises(OffsetGone, match="available offsets are 200 to 310") as caught:
        runner_log.read(199)
    assert (caught.value.start, caught.value.end) == (200, 310)
    with pytest.raises(ValueError, match="past the end"):
        runner_log.read(311)


def test_reopen_continues_offsets(logs: Path, open_logs: list[RunnerLog]) -> None:
    path = logs / "runner-0.log"
    first = make(open_logs, path, 100, 2)
    chunks = numbered(25)
    for chunk in chunks[:17]:
        first.write(chunk)
    first.close()

    again = make(open_logs, path, 100, 2)
    assert (again.start, again.end) == (0, 170)
    # Nothing is in the ring yet, so this maps offsets onto .1 and the current file.
    assert read_all(again, 0, max_bytes=33) == b"".join(chunks[:17])
    for chunk in chunks[17:]:
        again.write(chunk)
    assert again.end == 250
    assert path.read_bytes() == b"".join(chunks[20:])
    assert read_all(again, again.start) == b"".join(chunks)[again.start :]
    assert again.start == 0


def test_reopen_after_rotations_ignores_stray_backups(
    logs: Path, open_logs: list[RunnerLog]
) -> None:
    path = logs / "runner-0.log"
    logs.mkdir()
    path.write_bytes(b"current\n")
    path.with_name("runner-0.log.1").write_bytes(b"backup one\n")
    # .2 is missing, so .3 does not continue this log.
    path.with_name("runner-0.log.3").write_bytes(b"stray\n")

    runner_log = make(open_logs, path, 100, 3, ring_bytes=0)
    assert (runner_log.start, runner_log.end) == (0, 19)
    assert runner_log.read(0) == (0, b"backup one\ncurrent\n")


async def collect(
    follower: AsyncIterator[tuple[int, bytes]], into: asyncio.Queue[tuple[int, bytes]]
) -> None:
    async for item in follower:
        await into.put(item)


async def test_follow_yields_existing_then_new(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 100, 1)
    runner_log.write(b"one\n")
    runner_log.write(b"two\n")
    got: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    task = asyncio.create_task(collect(runner_log.follow(-4), got))
    try:
        assert await asyncio.wait_for(got.get(), 5) == (4, b"two\n")
        runner_log.write(b"three\n")
        assert await asyncio.wait_for(got.get(), 5) == (8, b"three\n")
        runner_log.write(b"four\n")
        runner_log.write(b"five\n")
        received = b""
        while received != b"four\nfive\n":
            _, data = await asyncio.wait_for(got.get(), 5)
            received += data
        assert got.empty()
    finally:
        task.cancel()


async def test_follow_ends_after_close(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 100, 1)
    runner_log.write(b"last words\n")
    got: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    task = asyncio.create_task(collect(runner_log.follow(0), got))
    assert await asyncio.wait_for(got.get(), 5) == (0, b"last words\n")
    runner_log.close()
    await asyncio.wait_for(task, 5)
    assert got.empty()


async def test_follow_across_rotations(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 20, 5, ring_bytes=0)
    got: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    task = asyncio.create_task(collect(runner_log.follow(0), got))
    try:
        chunks = numbered(8)
        for chunk in chunks:
            runner_log.write(chunk)
        received = b""
        while len(received) < 80:
            at, data = await asyncio.wait_for(got.get(), 5)
            assert at == len(received)
            received += data
        assert received == b"".join(chunks)
    finally:
        task.cancel()


async def test_pump_from_subprocess(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 8192, 3)
    script = "import sys\nfor i in range(2000): print(f'line {i}')\nprint('oops', file=sys.stderr)"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    await asyncio.wait_for(
        asyncio.gather(
            runner_log.pump(process.stdout), runner_log.pump(process.stderr, b"[stderr] ")
        ),
        30,
    )
    assert await process.wait() == 0

    stdout = b"".join(f"line {i}\n".encode() for i in range(2000))
    stderr = b"[stderr] oops\n"
    assert (runner_log.start, runner_log.end) == (0, len(stdout) + len(stderr))
    logged = read_all(runner_log, 0)
    assert on_disk(logs / "runner-0.log", 3) == logged
    # The two pipes interleave in any order, but each keeps its own order.
    assert stderr in logged
    assert logged.replace(stderr, b"", 1) == stdout


async def test_pump_prefix_tags_each_line(logs: Path, open_logs: list[RunnerLog]) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 4096, 1)
    stream = asyncio.StreamReader()
    got: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    follower = asyncio.create_task(collect(runner_log.follow(0), got))
    pump = asyncio.create_task(runner_log.pump(stream, b"E: "))
    try:
        # One piece at a time, so each is its own read and lines straddle chunks.
        for piece in (b"a\nb", b"b\n", b"\n", b"c"):
            stream.feed_data(piece)
            await asyncio.wait_for(got.get(), 5)
        stream.feed_eof()
        await asyncio.wait_for(pump, 5)
    finally:
        follower.cancel()
    assert runner_log.read(0)[1] == b"E: a\nE: bb\nE: \nE: c"


def test_disk_error_keeps_ring(
    tmp_path: Path, open_logs: list[RunnerLog], caplog: pytest.LogCaptureFixture
) -> None:
    # Root ignores permission bits, so make the log's folder a regular file instead.
    (tmp_path / "not-a-dir").write_text("")
    caplog.set_level(logging.WARNING, logger="daemon.runlog")
    runner_log = make(open_logs, tmp_path / "not-a-dir" / "runner-0.log", 100, 2, ring_bytes=64)
    for chunk in numbered(20):
        runner_log.write(chunk)

    warnings = [r for r in caplog.records if r.name == "daemon.runlog"]
    assert len(warnings) == 1
    assert "runner-0.log" in warnings[0].getMessage()
    assert (runner_log.start, runner_log.end) == (136, 200)
    assert runner_log.read(-10) == (190, b"000000019\n")
    with pytest.raises(OffsetGone):
        runner_log.read(0)


def test_disk_error_at_rotation_keeps_ring(
    logs: Path, open_logs: list[RunnerLog], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="daemon.runlog")
    runner_log = make(open_logs, logs / "runner-0.log", 100, 2, ring_bytes=50)
    chunks = numbered(20)
    for chunk in chunks[:5]:
        runner_log.write(chunk)
    # The folder vanishes and a file takes its place: the rename at rotation fails.
    shutil.rmtree(logs)
    logs.write_text("")
    for chunk in chunks[5:]:
        runner_log.write(chunk)

    assert len([r for r in caplog.records if r.name == "daemon.runlog"]) == 1
    assert runner_log.end == 200
    assert runner_log.start == 150
    assert runner_log.read(-1000) == (150, b"".join(chunks[15:]))


async def test_follower_left_behind_gets_offset_gone(
    logs: Path, open_logs: list[RunnerLog]
) -> None:
    runner_log = make(open_logs, logs / "runner-0.log", 20, 1, ring_bytes=0)
    runner_log.write(b"first\n")
    follower = runner_log.follow(0)
    assert await asyncio.wait_for(anext(follower), 5) == (0, b"first\n")
    for chunk in numbered(10):
        runner_log.write(chunk)
    with pytest.raises(OffsetGone):
        await asyncio.wait_for(anext(follower), 5)
