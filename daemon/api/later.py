"""Services whose behaviour belongs to later versions: they answer UNIMPLEMENTED
with what is missing, so a client can tell "not yet" from "broken"."""

from __future__ import annotations

from typing import Any

from daemon.errors import Unimplemented
from protos import (
    secret_service_pb2_grpc,
    skill_service_pb2_grpc,
)

Context = Any


class SecretService(secret_service_pb2_grpc.SecretServiceServicer):
    async def ListSecrets(self, request: Any, context: Context) -> Any:
        raise Unimplemented("secrets management is not available yet in this version")

    async def SetSecret(self, request: Any, context: Context) -> Any:
        raise Unimplemented("secrets management is not available yet in this version")

    async def DeleteSecret(self, request: Any, context: Context) -> Any:
        raise Unimplemented("secrets management is not available yet in this version")


class SkillService(skill_service_pb2_grpc.SkillServiceServicer):
    async def ListSkills(self, request: Any, context: Context) -> Any:
        raise Unimplemented("skills are not available yet in this version")

    async def GetSkill(self, request: Any, context: Context) -> Any:
        raise Unimplemented("skills are not available yet in this version")
