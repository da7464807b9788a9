"""A task's program as an asyncio subprocess whose exit is seen apart from its pipes.

asyncio's Process.wait() also waits for stdout and stderr to close, so a
background grandchild holding them would hide the program's exit; a protocol
hears both separately, and hands output over without a reader task per stream.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Sequence

# (fd, data): fd 1 is stdout, 2 is stderr.
OutputSink = Callable[[int, bytes], None]


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}
        self._sink: OutputSink | None = None
        # Output can arrive before the caller has the pid for its first event.
        self._early: list[tuple[int, bytes]] = []

    def connect(self, sink: OutputSink) -> None:
        self._sink = sink
        for fd, data in self._early:
            sink(fd, data)
        self._early.clear()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        if self._sink is None:
            self._early.append((fd, chunk))
        else:
            self._sink(fd, chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class ChildProcess:
    """A running program, in its own session and so its own process group."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.pid: int = transport.get_pid()

    @classmethod
    async def spawn(cls, argv: Sequence[str], cwd: str, env: dict[str, str]) -> ChildProcess:
        """Starts `argv`; raises OSError when it cannot (program or cwd missing...)."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(loop),
            *argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        return cls(transport, protocol)

    @property
    def exited(self) -> asyncio.Future[None]:
        """Done when the program itself has exited (its pipes may still be open)."""
        return self._protocol.exited

    @property
    def pipes_closed(self) -> asyncio.Future[None]:
        """Done when stdout and stderr are both at EOF."""
        return self._protocol.pipes_closed

    @property
    def returncode(self) -> int | None:
        """Exit code, or -N when killed by signal N; None while running."""
        return self._transport.get_returncode()

    def connect_output(self, sink: OutputSink) -> None:
        self._protocol.connect(sink)

    def pause_output(self) -> None:
        self._each_pipe(lambda pipe: pipe.pause_reading())

    def resume_output(self) -> None:
        self._each_pipe(lambda pipe: pipe.resume_reading())

    def close(self) -> None:
        """Closes the pipes; whatever they still held is dropped."""
        self._transport.close()

    def _each_pipe(self, action: Callable[[asyncio.ReadTransport], None]) -> None:
        for fd in (1, 2):
            pipe = self._transport.get_pipe_transport(fd)
            if isinstance(pipe, asyncio.ReadTransport) and not pipe.is_closing():
                action(pipe)
