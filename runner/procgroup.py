"""Signalling and killing a task's process group (the task and everything it started)."""

from __future__ import annotations

import asyncio
import os
import signal


def signal_group(pgid: int, sig: int) -> bool:
    """Sends `sig` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while a process of the group still runs. Zombies do not count: an
    orphan's zombie waits for init to reap it, which can take a while."""
    if not signal_group(pgid, 0):
        return False
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return not os.path.isdir("/proc")


async def kill_group(pgid: int, grace: float = 2.0, poll: float = 0.02) -> None:
    """SIGTERM to the whole group, then SIGKILL to what is left after `grace` seconds."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    # A stopped process only acts on SIGTERM once continued.
    signal_group(pgid, signal.SIGCONT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        await asyncio.sleep(poll)
        if not group_alive(pgid):
            return
    signal_group(pgid, signal.SIGKILL)
