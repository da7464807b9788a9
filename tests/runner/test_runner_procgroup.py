"""Killing a task's whole process group, grandchildren included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psutil

from runner.procgroup import group_alive, kill_group

WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def spawn_group(
    script: str, wait_until: WaitUntil
) -> tuple[asyncio.subprocess.Process, list[int]]:
    proc = await asyncio.create_subprocess_exec("sh", "-c", script, start_new_session=True)
    await wait_until(lambda: len(psutil.Process(proc.pid).children()) == 2)
    return proc, [proc.pid, *(child.pid for child in psutil.Process(proc.pid).children())]


async def test_kills_the_leader_and_its_background_children(wait_until: WaitUntil) -> None:
    proc, pids = await spawn_group("sleep 30 & sleep 30", wait_until)
    await kill_group(proc.pid, grace=2.0)
    await asyncio.wait_for(proc.wait(), 5)
    await wait_until(lambda: not any(running(pid) for pid in pids))
    await wait_until(lambda: not group_alive(proc.pid))


async def test_sigkills_what_ignores_sigterm_after_the_grace(wait_until: WaitUntil) -> None:
    # Ignored signals are inherited, so every process of the group ignores SIGTERM.
    proc, pids = await spawn_group("trap '' TERM; sleep 30 & sleep 30", wait_until)
    started = time.monotonic()
    await kill_group(proc.pid, grace=0.3)
    await asyncio.wait_for(proc.wait(), 5)
    await wait_until(lambda: not any(running(pid) for pid in pids))
    assert time.monotonic() - started >= 0.3
    assert proc.returncode == -9


async def test_a_group_already_gone_is_fine(wait_until: WaitUntil) -> None:
    proc = await asyncio.create_subprocess_exec("true", start_new_session=True)
    await proc.wait()
    await wait_until(lambda: not group_alive(proc.pid))
    await kill_group(proc.pid)
