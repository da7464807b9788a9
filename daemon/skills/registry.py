"""Skills found in an ordered list of folders; a later folder overrides an earlier one.

A broken skill is listed with its problems, never dropped, and it still takes its
name: a user whose override is broken sees it in `skills list` rather than getting
the shipped skill silently, and the task that names it is told it is invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.skillformat import SkillDoc, parse_skill


@dataclass(frozen=True)
class Source:
    label: str  # "shipped" (the repo's skills/), "user" (config_dir/skills), "workspace"
    folder: Path


@dataclass(frozen=True)
class Entry:
    name: str  # the folder's name, which a valid skill's name equals
    source: str  # the label of the source it came from: the one that won the name
    folder: Path
    doc: SkillDoc | None  # None when invalid
    problems: tuple[str, ...]
    overrides: tuple[str, ...]  # labels of the sources whose same-named skills it hides

    @property
    def valid(self) -> bool:
        return self.doc is not None


class Registry:
    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self._entries = {entry.name: entry for entry in entries}

    @classmethod
    def scan(cls, sources: Sequence[Source]) -> Registry:
        found: dict[str, Entry] = {}
        for source in sources:
            for folder in _skill_folders(source.folder):
                doc, problems = parse_skill(folder)
                hidden = found.get(folder.name)
                overrides = () if hidden is None else (*hidden.overrides, hidden.source)
                found[folder.name] = Entry(
                    name=folder.name,
                    source=source.label,
                    folder=folder,
                    doc=doc,
                    problems=tuple(str(problem) for problem in problems),
                    overrides=overrides,
                )
        return cls(list(found.values()))

    def entries(self) -> list[Entry]:
        return sorted(self._entries.values(), key=lambda entry: entry.name)

    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def valid(self) -> list[SkillDoc]:
        return [entry.doc for entry in self.entries() if entry.doc is not None]


def _skill_folders(root: Path) -> list[Path]:
    """Every subfolder is meant as a skill (one without SKILL.md is reported as such),
    except hidden ones and Python's (`__pycache__`: no skill name starts with "_"); a
    source folder that does not exist yet simply has none."""
    if not root.is_dir():
        return []
    return sorted(
        child
        for child in root.iterdir()
        if child.is_dir() and not child.name.startswith((".", "_"))
    )
