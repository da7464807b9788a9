"""The skills a task is offered: listed by name and description in the first prompt,
their bodies read from disk only when the agent loads one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from protos import worker_service_pb2
from shared.skillformat import load_body


class OfferedSkills:
    """The tools' SkillLoader for one task: only the skills it was offered load."""

    def __init__(self, refs: Sequence[worker_service_pb2.SkillRef]) -> None:
        self._refs = {ref.name: ref for ref in refs}

    def load(self, name: str) -> str:
        ref = self._refs[name]  # KeyError: not offered to this task
        return load_body(Path(ref.path))

    def folder(self, name: str) -> str:
        ref = self._refs.get(name)
        return ref.path if ref is not None else ""

    def prompt_section(self) -> str:
        """What the first prompt says about them (never their bodies)."""
        if not self._refs:
            return ""
        lines = [f"- {ref.name}: {ref.description}" for ref in self._refs.values()]
        return (
            "\n\nSkills you can load with the load_skill tool when one fits the work"
            " (each holds instructions to follow):\n" + "\n".join(lines)
        )

    def allowed_tools(self) -> list[str]:
        return [rule for ref in self._refs.values() for rule in ref.allowed_tools]
