"""The state folder's free space: below the configured floor, new work is refused
(RESOURCE_EXHAUSTED) before anything half-stored could be lost."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from daemon.errors import StorageFull

log = logging.getLogger(__name__)


class SpaceGuard:
    def __init__(self, folder: Path, min_free_bytes: int) -> None:
        self._folder = folder
        self._min = min_free_bytes
        self._short = False

    def free_bytes(self) -> int:
        return shutil.disk_usage(self._folder).free

    def problem(self) -> str:
        """Why new work is refused now; "" when it is not."""
        free = self.free_bytes()
        short = free < self._min
        if short != self._short:
            # Said once when it starts and once when it ends, not at every call.
            if short:
                log.error(
                    "the state folder %s is nearly full (%d KiB free)", self._folder, free // 1024
                )
            else:
                log.info("the state folder %s has room again", self._folder)
            self._short = short
        if not short:
            return ""
        return (
            f"the state folder {self._folder} has {free // 1024} KiB free, under"
            f" [daemon] min_free_mb = {self._min / 2**20:g}: free some space there;"
            " new tasks are refused until then, nothing stored is lost"
        )

    def check(self) -> None:
        problem = self.problem()
        if problem:
            raise StorageFull(problem, metadata={"free_bytes": self.free_bytes()})
