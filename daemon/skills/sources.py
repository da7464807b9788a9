"""Where skills are found, in override order: shipped, the user's, the workspace's."""

from __future__ import annotations

from pathlib import Path

import skills as shipped_skills
from daemon.skills.registry import Source


def shipped_folder() -> Path:
    return Path(shipped_skills.__file__).resolve().parent


def skill_sources(config_dir: Path, workspace: str = "") -> list[Source]:
    sources = [Source("shipped", shipped_folder()), Source("user", config_dir / "skills")]
    if workspace:
        sources.append(Source("workspace", Path(workspace) / ".stigmer" / "skills"))
    return sources
