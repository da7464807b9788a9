"""Services whose behaviour belongs to later versions: they answer UNIMPLEMENTED
with what is missing, so a client can tell "not yet" from "broken"."""

from __future__ import annotations

from typing import Any

from daemon.errors import Unimplemented
from protos import (
    skill_service_pb2_grpc,
)

Context = Any


class SkillService(skill_service_pb2_grpc.SkillServiceServicer):
    async def ListSkills(self, request: Any, context: Context) -> Any:
        raise Unimplemented("skills are not available yet in this version")

    async def GetSkill(self, request: Any, context: Context) -> Any:
        raise Unimplemented("skills are not available yet in this version")
