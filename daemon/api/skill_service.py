"""SkillService: the skills found in the shipped and the user's folders (a task's
workspace may add its own when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.errors import NotFound
from daemon.skills import Entry, Registry
from daemon.skills.sources import skill_sources
from protos import skill_service_pb2, skill_service_pb2_grpc
from shared.skillformat import load_body

Context = Any


def entry_to_proto(entry: Entry, body: str = "") -> skill_service_pb2.Skill:
    doc = entry.doc
    message = skill_service_pb2.Skill(
        name=entry.name,
        source=entry.source,
        path=str(entry.folder),
        problems=entry.problems,
        overrides=entry.overrides,
        body=body,
    )
    if doc is not None:
        message.description = doc.description
        message.tokens = doc.tokens
        message.domains.extend(doc.domains)
        message.languages.extend(doc.languages)
        message.secrets.extend(doc.secrets)
        message.allowed_tools.extend(doc.allowed_tools)
    return message


class SkillService(skill_service_pb2_grpc.SkillServiceServicer):
    def __init__(self, config_dir: Path) -> None:
        self._config_dir = config_dir

    def _registry(self) -> Registry:
        # Scanned per call: skills are files users edit while the daemon runs.
        return Registry.scan(skill_sources(self._config_dir))

    async def ListSkills(
        self, request: skill_service_pb2.ListSkillsRequest, context: Context
    ) -> skill_service_pb2.ListSkillsResponse:
        return skill_service_pb2.ListSkillsResponse(
            skills=[entry_to_proto(e) for e in self._registry().entries()]
        )

    async def GetSkill(
        self, request: skill_service_pb2.GetSkillRequest, context: Context
    ) -> skill_service_pb2.Skill:
        registry = self._registry()
        entry = registry.get(request.name)
        if entry is None:
            known = ", ".join(e.name for e in registry.entries()) or "none"
            raise NotFound(
                f"no skill {request.name!r}; skills: {known}",
                reason="SKILL_NOT_FOUND",
                metadata={"name": request.name},
            )
        body = load_body(entry.folder) if entry.doc is not None else ""
        return entry_to_proto(entry, body)
