"""A journal of the processes the daemon started (runner and task process groups),
so a daemon that starts after a crash can end what the last one left. Each entry
keeps the process start time: a pid the system has since reused is never killed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    pid: int
    create_time: float


def identify(pid: int) -> Entry | None:
    try:
        return Entry(pid, psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _same_process(entry: Entry) -> bool:
    found = identify(entry.pid)
    return found is not None and abs(found.create_time - entry.create_time) < 0.01


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._entries: dict[str, Entry] = {}

    def record(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        self._save()

    def forget(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in self._entries.items()}))
        os.replace(tmp, self._path)

    def sweep(self) -> list[str]:
        """Kills the process groups a previous daemon left; returns what it killed."""
        try:
            saved = json.loads(self._path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable process journal %s: %s", self._path, exc)
            saved = {}
        killed = []
        for key, raw in saved.items():
            try:
                entry = Entry(int(raw["pid"]), float(raw["create_time"]))
            except (KeyError, TypeError, ValueError):
                continue
            if _same_process(entry):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(entry.pid, signal.SIGKILL)
                killed.append(f"{key} (pid {entry.pid})")
        if killed:
            log.warning("ended processes a previous daemon left: %s", ", ".join(killed))
        self._entries.clear()
        self._save()
        return killed
