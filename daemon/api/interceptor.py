"""One interceptor for every call: checks the bearer token, and maps the core's
errors to gRPC status codes (never INTERNAL for something a caller sent)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from daemon import errors
from shared import auth
from shared.redact import Redactor

log = logging.getLogger(__name__)

# grpc-stubs types handlers loosely; behaviors are plain callables here.
Handler = Any

WORKER_PREFIX = "/stigmer.local.v1.WorkerService/"
# Liveness probes must work before a client has read the token; they reveal nothing.
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

STATUS_OF: dict[type[errors.DaemonError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
}


def status_of(error: errors.DaemonError) -> grpc.StatusCode:
    for kind, code in STATUS_OF.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


async def _abort_for(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, redactor: Redactor
) -> None:
    if isinstance(exc, errors.DaemonError):
        # Messages quote what the caller sent, which may hold a secret.
        await context.abort(status_of(exc), redactor.text(str(exc)))
    log.exception("unexpected error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error in the daemon; see its log")


def _guard_unary(
    behavior: Callable[..., Awaitable[Any]], redactor: Redactor
) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except (errors.DaemonError, Exception) as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort_for(context, exc, redactor)

    return guarded


def _guard_stream(
    behavior: Callable[..., AsyncIterator[Any]], redactor: Redactor
) -> Callable[..., AsyncIterator[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            async for item in behavior(request, context):
                yield item
        except (errors.DaemonError, Exception) as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort_for(context, exc, redactor)

    return guarded


def _refuse(handler: Handler, code: grpc.StatusCode, message: str) -> Any:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, handler.request_deserializer, handler.response_serializer
    )


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Client token for client services, a runner's token for WorkerService only."""

    def __init__(
        self,
        client_token: str,
        runner_for_token: Callable[[str], str | None],
        redactor: Redactor,
    ) -> None:
        self._client_token = client_token
        self._runner_for_token = runner_for_token
        self._redactor = redactor

    def _check(self, method: str, token: str | None) -> tuple[grpc.StatusCode, str] | None:
        if method.startswith(OPEN_PREFIXES):
            return None
        if not token:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing token: send 'authorization: Bearer <token>' with the token from the"
                " daemon's token file",
            )
        is_client = hmac.compare_digest(token, self._client_token)
        is_runner = not is_client and self._runner_for_token(token) is not None
        if not (is_client or is_runner):
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "wrong token: read it again from the daemon's token file",
            )
        if method.startswith(WORKER_PREFIX) and not is_runner:
            return (grpc.StatusCode.PERMISSION_DENIED, "WorkerService is for runners only")
        if is_runner and not method.startswith(WORKER_PREFIX):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                "a runner token is valid on WorkerService only",
            )
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        token = auth.token_from_metadata(handler_call_details.invocation_metadata)
        refusal = self._check(method, token)
        if refusal is not None:
            return _refuse(handler, *refusal)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _guard_unary(handler.unary_unary, self._redactor),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _guard_stream(handler.unary_stream, self._redactor),  # type: ignore[arg-type]
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler
