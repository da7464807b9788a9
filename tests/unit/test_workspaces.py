"""Old fresh workspaces are removed; recent ones, running ones and others are kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from daemon.workspaces import Workspaces


def test_only_folders_of_tasks_ended_long_ago_go(tmp_path: Path) -> None:
    ended = {"t-old": 100.0, "t-recent": 950.0, "t-running": None}
    for name in [*ended, "t-unknown", "not-a-task"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")

    def ended_before(ids: Sequence[str], before: float) -> set[str]:
        return {
            t
            for t in ids
            if t not in ended or (ended[t] is not None and ended[t] < before)  # type: ignore[operator]
        }

    workspaces = Workspaces(tmp_path, ended_before, retention_seconds=500, clock=lambda: 1000.0)
    assert asyncio.run(workspaces.sweep()) == ["t-old", "t-unknown"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-task", "t-recent", "t-running"]
