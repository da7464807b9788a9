"""The types shared by the agent's tools: constraints, changes, results, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ChangeKind = Literal["created", "modified", "deleted"]


@dataclass(frozen=True)
class Constraints:
    """What the task allows its write tools to do (from the task file)."""

    # Globs relative to the workspace (`**` crosses folders); empty = anywhere inside it.
    allowed_write_globs: tuple[str, ...] = ()
    allowed_read_globs: tuple[str, ...] = ()
    max_files_changed: int = 0  # 0 = no limit
    max_diff_bytes: int = 0  # 0 = no limit (bytes written in all)


@dataclass(frozen=True)
class Change:
    """One file a tool changed: its path relative to the workspace and its size afterwards."""

    path: str
    change: ChangeKind
    size: int


@dataclass
class ToolResult:
    output: str
    is_error: bool = False
    exit_code: int | None = None
    changes: list[Change] = field(default_factory=list)


class ToolError(Exception):
    """A tool call that cannot be done; the message goes back to the model as a tool error."""


class SkillLoader(Protocol):
    def load(self, name: str) -> str:
        """The skill's text; raises KeyError for an unknown name."""
        ...
