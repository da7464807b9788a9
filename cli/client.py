"""The CLI's one way to talk to the daemon: a grpc.aio channel on its unix socket.

Every call carries the bearer token and a timeout (unary calls only; streams
run until they end). gRPC failures leave this module as `CliError`s, so no
command ever shows a gRPC traceback.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.errors import CliError, DaemonNotRunning, ExitCode
from protos import (
    daemon_service_pb2_grpc,
    event_service_pb2_grpc,
    runner_service_pb2_grpc,
    secret_service_pb2_grpc,
    skill_service_pb2_grpc,
    task_service_pb2_grpc,
)
from shared.auth import bearer, read_token, sendable
from shared.paths import Paths, resolve

if TYPE_CHECKING:
    from protos.daemon_service_pb2_grpc import DaemonServiceAsyncStub
    from protos.event_service_pb2_grpc import EventServiceAsyncStub
    from protos.runner_service_pb2_grpc import RunnerServiceAsyncStub
    from protos.secret_service_pb2_grpc import SecretServiceAsyncStub
    from protos.skill_service_pb2_grpc import SkillServiceAsyncStub
    from protos.task_service_pb2_grpc import TaskServiceAsyncStub

Req = TypeVar("Req")
Resp = TypeVar("Resp")

UNARY_TIMEOUT_SECONDS = 10.0
# Log events can carry large chunks; gRPC's default 4 MiB would cut a watch short.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

# Status codes that mean the caller's input was wrong; everything else the daemon
# refuses is a general failure (UNAVAILABLE is handled apart: daemon not running).
_USAGE_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})


def exit_code_for(code: grpc.StatusCode) -> int:
    """The CLI exit code for a gRPC status code (see cli.errors for the table)."""
    if code == grpc.StatusCode.UNAVAILABLE:
        return ExitCode.DAEMON_NOT_RUNNING
    if code in _USAGE_CODES:
        return ExitCode.USAGE
    return ExitCode.FAILURE


def cli_error_from_rpc(error: grpc.aio.AioRpcError) -> CliError:
    """Turns a failed call into the one line a user sees."""
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return DaemonNotRunning()
    details = (error.details() or "").strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = (
            f"the daemon did not answer in time ({details or 'deadline exceeded'}); "
            "see `stigmer local logs`"
        )
    elif code == grpc.StatusCode.UNIMPLEMENTED and details in ("", "Method not found!"):
        # gRPC's own answer for a service the daemon does not serve (yet).
        message = "the daemon does not implement this call yet (UNIMPLEMENTED)"
    elif code == grpc.StatusCode.UNAUTHENTICATED and not details:
        message = "the daemon refused our token (UNAUTHENTICATED)"
    else:
        message = details or code.name
    reason, metadata = _error_info(error)
    return CliError(
        f"error: {message}",
        exit_code_for(code),
        rpc_code=code.name,
        reason=reason,
        metadata=metadata,
    )


def _error_info(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """The daemon's ErrorInfo (reason, metadata) from the rich status, if any."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        return "", {}
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason), dict(info.metadata)
    return "", {}


class DaemonClient:
    """A connection to the daemon, with the stubs every command uses.

    Use as `async with DaemonClient() as client:`. Entering raises
    `DaemonNotRunning` when there is no socket, and a `CliError` when the token
    cannot be read.
    """

    tasks: TaskServiceAsyncStub
    daemon: DaemonServiceAsyncStub
    runners: RunnerServiceAsyncStub
    events: EventServiceAsyncStub
    secrets: SecretServiceAsyncStub
    skills: SkillServiceAsyncStub

    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths if paths is not None else resolve()
        self._channel: grpc.aio.Channel | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._health: health_pb2_grpc.HealthStub | None = None

    async def __aenter__(self) -> Self:
        self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def connect(self) -> None:
        socket = self.paths.socket.absolute()
        if not socket.exists():
            raise DaemonNotRunning()
        self._metadata = bearer(self._token())
        channel = grpc.aio.insecure_channel(f"unix://{socket}", options=_CHANNEL_OPTIONS)
        self._channel = channel
        self.tasks = task_service_pb2_grpc.TaskServiceStub(channel)
        self.daemon = daemon_service_pb2_grpc.DaemonServiceStub(channel)
        self.runners = runner_service_pb2_grpc.RunnerServiceStub(channel)
        self.events = event_service_pb2_grpc.EventServiceStub(channel)
        self.secrets = secret_service_pb2_grpc.SecretServiceStub(channel)
        self.skills = skill_service_pb2_grpc.SkillServiceStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)

    async def reconnect(self) -> None:
        """A fresh channel, so a restarted daemon is reached without gRPC's backoff."""
        await self.close()
        self.connect()

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(None)

    def _token(self) -> str:
        path = self.paths.token_file
        try:
            token = read_token(path)
        except OSError as e:
            raise CliError(
                f"error: cannot read the daemon's token file {path}: {e.strerror or e}"
            ) from None
        except UnicodeDecodeError:
            token = ""
        if token and not sendable(token):
            token = ""
        if token == "":
            raise CliError(
                f"error: the daemon's token file {path} is damaged (not a token);"
                " restart the daemon with `stigmer local restart` to write a new one"
            )
        if token is None:
            raise CliError(
                f"error: the daemon's socket {self.paths.socket} exists but its token file "
                f"{path} is missing or empty; restart the daemon with `stigmer local restart`"
            )
        return token

    async def unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        deadline_seconds: float | None = UNARY_TIMEOUT_SECONDS,
    ) -> Resp:
        """Calls a unary method with the token and a deadline."""
        try:
            return await method(request, timeout=deadline_seconds, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise cli_error_from_rpc(e) from None

    async def stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
    ) -> AsyncGenerator[Resp, None]:
        """Yields a server stream's messages until it ends; no timeout."""
        call = method(request, metadata=self._metadata)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as e:
            raise cli_error_from_rpc(e) from None
        finally:
            call.cancel()

    async def serving(self, deadline_seconds: float = 2.0) -> bool:
        """True when the daemon's health check says SERVING."""
        if self._health is None:
            return False
        try:
            response = await self._health.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=deadline_seconds,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
