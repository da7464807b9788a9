"""The bash tool: a shell command in its own process group, bounded in time and in output."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping

from runner.procgroup import kill_group, signal_group
from runner.tools.base import ToolResult
from runner.tools.workspace import Workspace

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 600.0
HEAD_BYTES = 8192
TAIL_BYTES = 8192
KILL_GRACE = 2.0
# How long the output pipe may stay open once the shell is gone and its group killed
# (only a process that left the group, with setsid, can hold it that long).
DRAIN_TIMEOUT = 2.0


class HeadTail:
    """Keeps the first and the last bytes of an output of any size, and counts the rest."""

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._head_max = head
        self._tail_max = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            # Trimmed in batches, so a chatty program costs no quadratic copying.
            if len(self._tail) > 2 * self._tail_max:
                del self._tail[: len(self._tail) - self._tail_max]

    def text(self) -> str:
        tail = self._tail[-self._tail_max :] if self._tail_max else bytearray()
        cut = self.total - len(self._head) - len(tail)
        if cut <= 0:
            return (self._head + tail).decode("utf-8", "replace")
        head = self._head.decode("utf-8", "replace")
        return f"{head}\n[... {cut} bytes cut ...]\n{tail.decode('utf-8', 'replace')}"


class _Protocol(asyncio.SubprocessProtocol):
    """Hears the shell's exit apart from its output pipe, like runner.childproc's protocol.

    runner.childproc.ChildProcess always opens stdout and stderr as two pipes, which loses
    the order between them; here stderr goes into stdout (one pipe, in order).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: HeadTail) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self._sink = sink

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._sink.add(data.encode() if isinstance(data, str) else data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def shell_argv(command: str, env: Mapping[str, str]) -> list[str]:
    """`bash -c command`, or `sh -c command` where there is no bash."""
    search = env.get("PATH") or os.defpath
    shell = shutil.which("bash", path=search) or shutil.which("sh", path=search) or "/bin/sh"
    return [shell, "-c", command]


def clamp_timeout(requested: float | None) -> tuple[float, str | None]:
    """The timeout to use, and a note for the model when its request was lowered."""
    if requested is None:
        return DEFAULT_TIMEOUT, None
    if requested > MAX_TIMEOUT:
        return MAX_TIMEOUT, (
            f"note: the timeout of {requested:g} s asked for is above the maximum; "
            f"{MAX_TIMEOUT:g} s was used"
        )
    return requested, None


async def run_bash(command: str, time_limit: float | None, workspace: Workspace) -> ToolResult:
    """Runs `command` in the workspace and returns its merged output and exit code.

    File changes made by the command are not tracked: only write_file and edit_file
    count toward the task's max_files_changed and max_diff_bytes (the policy judges
    the command itself before it runs).
    """
    seconds, note = clamp_timeout(time_limit)
    loop = asyncio.get_running_loop()
    output = HeadTail()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(loop, output),
            *shell_argv(command, workspace.env),
            cwd=workspace.root,
            env=workspace.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ToolResult(f"could not start the shell: {exc}", is_error=True)
    pgid = transport.get_pid()  # its own session, so its own group
    held_open = False
    try:
        await asyncio.wait([protocol.exited], timeout=seconds)
        timed_out = not protocol.exited.done()
        # On exit, what the command left running in the background goes too; on timeout,
        # the whole group. Both also release the output pipe.
        await kill_group(pgid, KILL_GRACE)
        if timed_out:
            await asyncio.wait([protocol.exited], timeout=KILL_GRACE)
        await asyncio.wait([protocol.eof], timeout=DRAIN_TIMEOUT)
        held_open = not protocol.eof.done()
    except BaseException:  # cancelled: nothing of the group may outlive the call
        await _end_group(pgid)
        raise
    finally:
        transport.close()

    lines = [output.text().removesuffix("\n") or "(no output)"]
    if held_open:
        lines.append(
            "note: a process that left the command's process group still holds its output; "
            "what it prints is not shown"
        )
    if note:
        lines.append(note)
    if timed_out:
        lines.append(f"command timed out after {seconds:g} s; its process group was killed")
        return ToolResult("\n".join(lines), is_error=True)
    code = transport.get_returncode()
    assert code is not None  # the exit was seen
    if code < 0:
        lines.append(f"killed by signal {-code} ({_signal_name(-code)})")
    else:
        lines.append(f"exit code {code}")
    return ToolResult("\n".join(lines), exit_code=code)


async def _end_group(pgid: int) -> None:
    done = False
    try:
        await kill_group(pgid, KILL_GRACE)
        done = True
    finally:
        if not done:  # interrupted again: no more grace
            signal_group(pgid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
