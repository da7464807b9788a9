"""One interceptor for every call: checks the bearer token, and maps the core's
errors to gRPC status codes (never INTERNAL for something a caller sent).

Every status the daemon itself sends carries a google.rpc.Status in the
`grpc-status-details-bin` trailer with one google.rpc.ErrorInfo (reason, domain
"stigmer.local", metadata), so a client branches on the reason, not the text. The one
exception is gRPC's own refusal of an oversized message (RESOURCE_EXHAUSTED before any
handler runs): the library answers it and it carries no details."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

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


def rich_status(
    code: grpc.StatusCode, message: str, reason: str, metadata: Mapping[str, str] | None = None
) -> grpc.Status:
    """A status whose details hold an ErrorInfo with `reason` in the stigmer.local domain."""
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=errors.DOMAIN, metadata=dict(metadata or {})
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    result: grpc.Status = rpc_status.to_status(status)
    return result


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Ends the call with `code`, `message` and an ErrorInfo; always raises."""
    # What callers sent is quoted back cut short: gRPC refuses trailers past 16 KiB,
    # and the client would then see that instead of the error.
    message = _cut(message, MAX_MESSAGE_CHARS)
    short = {k: _cut(v, MAX_METADATA_CHARS) for k, v in (metadata or {}).items()}
    # grpc-stubs lacks it; grpc.aio has had it since 1.32.
    await context.abort_with_status(rich_status(code, message, reason, short))  # type: ignore[attr-defined]


# Percent-encoded in the trailers: a non-ASCII character can take 6 bytes there.
MAX_MESSAGE_CHARS = 600
MAX_METADATA_CHARS = 120


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Malformed:
    """A request body that is not valid protobuf for its method."""


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Lets a body that does not parse reach the guard, which answers INVALID_ARGUMENT
    (gRPC itself would answer UNKNOWN and log a traceback)."""
    if deserializer is None:
        return None

    def parse(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception:
            return _Malformed()

    return parse


async def _refuse_malformed(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not valid protobuf for this method: build it from the .proto files",
        "MALFORMED_REQUEST",
    )


async def _abort_for(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, redactor: Redactor
) -> None:
    if isinstance(exc, errors.DaemonError):
        # Messages (and ids in metadata) quote what the caller sent, which may hold a secret.
        await abort(
            context,
            status_of(exc),
            redactor.text(str(exc)),
            exc.reason,
            {k: redactor.text(v) for k, v in exc.metadata.items()},
        )
    log.exception("unexpected error", exc_info=exc)
    await abort(
        context, grpc.StatusCode.INTERNAL, "internal error in the daemon; see its log", "INTERNAL"
    )


def _guard_unary(
    behavior: Callable[..., Awaitable[Any]], redactor: Redactor
) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Malformed):
            await _refuse_malformed(context)
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
        if isinstance(request, _Malformed):
            await _refuse_malformed(context)
        try:
            async for item in behavior(request, context):
                yield item
        except (errors.DaemonError, Exception) as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort_for(context, exc, redactor)

    return guarded


Refusal = tuple[grpc.StatusCode, str, str]


def _refuse(handler: Handler | None, refusal: Refusal, metadata: Mapping[str, str]) -> Any:
    code, message, reason = refusal

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, code, message, reason, metadata)

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, code, message, reason, metadata)
        yield  # pragma: no cover - makes this an async generator

    if handler is None:
        # An unknown method: raw bytes in, a status out, whatever its shape was meant to be.
        return grpc.unary_unary_rpc_method_handler(unary)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream, _tolerant(handler.request_deserializer), handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, _tolerant(handler.request_deserializer), handler.response_serializer
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

    def _check(self, method: str, token: str | None) -> Refusal | None:
        if method.startswith(OPEN_PREFIXES):
            return None
        if not token:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing token: send 'authorization: Bearer <token>' with the token from the"
                " daemon's token file",
                "TOKEN_MISSING",
            )
        is_client = hmac.compare_digest(token, self._client_token)
        is_runner = not is_client and self._runner_for_token(token) is not None
        if not (is_client or is_runner):
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "wrong token: read it again from the daemon's token file",
                "TOKEN_INVALID",
            )
        if method.startswith(WORKER_PREFIX) and not is_runner:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                "WorkerService is for runners only",
                "CLIENT_TOKEN_ON_WORKER_API",
            )
        if is_runner and not method.startswith(WORKER_PREFIX):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                "a runner token is valid on WorkerService only",
                "RUNNER_TOKEN_ON_CLIENT_API",
            )
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return _refuse(
                None,
                (
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"no method {method}: see the .proto files or server reflection",
                    "UNIMPLEMENTED",
                ),
                {"method": method},
            )
        token = auth.token_from_metadata(handler_call_details.invocation_metadata)
        refusal = self._check(method, token)
        if refusal is not None:
            return _refuse(handler, refusal, {"method": method})
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _guard_unary(handler.unary_unary, self._redactor),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _guard_stream(handler.unary_stream, self._redactor),  # type: ignore[arg-type]
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        return handler
