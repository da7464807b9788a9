"""CPU and memory of a runner's process tree, for ListRunners."""

from __future__ import annotations

import contextlib

import psutil


class Sampler:
    """Keeps psutil handles between samples: CPU percent is measured since the last call."""

    def __init__(self) -> None:
        self._handles: dict[int, psutil.Process] = {}

    def sample(self, pid: int) -> tuple[float, int]:
        """(CPU percent of one core, resident bytes) of `pid` and its descendants."""
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0
        cpu, rss = 0.0, 0
        alive = set()
        for proc in tree:
            handle = self._handles.setdefault(proc.pid, proc)
            alive.add(proc.pid)
            with contextlib.suppress(psutil.Error):
                cpu += handle.cpu_percent(None)
                rss += handle.memory_info().rss
        for gone in set(self._handles) - alive:
            del self._handles[gone]
        return cpu, rss
