"""SecretService: names, sources and hints go out; values only come in."""

from __future__ import annotations

from typing import Any

from daemon.errors import FailedPrecondition, NotFound, reason_for
from daemon.secrets import SecretInfo, Secrets
from protos import secret_service_pb2, secret_service_pb2_grpc
from shared.secretstore import Source

Context = Any

_SOURCES = {
    Source.ENVIRONMENT: secret_service_pb2.SECRET_SOURCE_ENVIRONMENT,
    Source.KEYRING: secret_service_pb2.SECRET_SOURCE_KEYRING,
    Source.PLAINTEXT: secret_service_pb2.SECRET_SOURCE_PLAINTEXT_FILE,
}


def info_to_proto(info: SecretInfo) -> secret_service_pb2.SecretInfo:
    return secret_service_pb2.SecretInfo(
        name=info.name,
        source=_SOURCES[info.source]
        if info.source
        else secret_service_pb2.SECRET_SOURCE_UNSPECIFIED,
        hint=info.hint,
        required_by=info.required_by,
    )


class SecretService(secret_service_pb2_grpc.SecretServiceServicer):
    def __init__(self, secrets: Secrets) -> None:
        self._secrets = secrets

    async def ListSecrets(
        self, request: secret_service_pb2.ListSecretsRequest, context: Context
    ) -> secret_service_pb2.ListSecretsResponse:
        return secret_service_pb2.ListSecretsResponse(
            secrets=[info_to_proto(i) for i in await self._secrets.describe()]
        )

    async def SetSecret(
        self, request: secret_service_pb2.SetSecretRequest, context: Context
    ) -> secret_service_pb2.SecretInfo:
        with reason_for(FailedPrecondition, "KEYRING_UNAVAILABLE", name=request.name):
            info = await self._secrets.put(request.name, request.value, request.insecure_storage)
        return info_to_proto(info)

    async def DeleteSecret(
        self, request: secret_service_pb2.DeleteSecretRequest, context: Context
    ) -> secret_service_pb2.DeleteSecretResponse:
        with (
            reason_for(FailedPrecondition, "KEYRING_UNAVAILABLE", name=request.name),
            reason_for(NotFound, "SECRET_NOT_FOUND", name=request.name),
        ):
            await self._secrets.delete(request.name)
        return secret_service_pb2.DeleteSecretResponse()
