"""Fresh task folders (under the state dir) are removed a while after their task
ended; a workspace the user gave is never touched, as it never lives here."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class Workspaces:
    def __init__(
        self,
        root: Path,
        ended_before: Callable[[Sequence[str], float], set[str]],
        retention_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._root = root
        self._ended_before = ended_before
        self._retention = retention_seconds
        self._clock = clock

    async def sweep(self) -> list[str]:
        """Removes the folders of tasks that ended more than the retention ago (the
        store is asked on the loop's thread; only the removal runs in a thread)."""
        try:
            folders = {
                p.name: p for p in self._root.iterdir() if p.is_dir() and p.name.startswith("t-")
            }
        except FileNotFoundError:
            return []
        old = self._ended_before(sorted(folders), self._clock() - self._retention)
        for task_id in sorted(old):
            await asyncio.to_thread(shutil.rmtree, folders[task_id], True)
        if old:
            log.info("removed %d old task workspace(s)", len(old))
        return sorted(old)
