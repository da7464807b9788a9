"""Keeping a runner from outliving the daemon that started it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Asks Linux for SIGTERM when the parent dies (elsewhere the parent check covers it)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: other platforms never pay for it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def parent_is(daemon_pid: int) -> bool:
    """False when the daemon is no longer our parent (it died, maybe before prctl)."""
    return os.getppid() == daemon_pid


async def watch_parent(daemon_pid: int, interval: float = 1.0) -> None:
    """Returns once the daemon is no longer the parent."""
    # Polled: no platform-neutral notification exists for a parent's death.
    while True:
        await asyncio.sleep(interval)
        if not parent_is(daemon_pid):
            return
