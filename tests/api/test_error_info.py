"""Every error the daemon sends carries google.rpc.ErrorInfo (reason, domain stigmer.local,
metadata) in its rich status, so a client branches on the reason, not on the text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from protos import (
    event_service_pb2,
    event_service_pb2_grpc,
    runner_service_pb2,
    secret_service_pb2,
    secret_service_pb2_grpc,
    skill_service_pb2,
    skill_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    worker_service_pb2,
)
from shared import auth
from tests.support import Client, Daemon, write_config

C = grpc.StatusCode
SECRET = "sk-ant-api03-abcdefghijklmnopqrstuvwx"


@dataclass
class World:
    daemon: Daemon
    client: Client
    runner_md: tuple[tuple[str, str]]
    runner_pid: int
    done_task: task_pb2.Task


@pytest.fixture
async def world(daemon: Daemon, home: Path) -> World:
    write_config(
        home, '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
    )
    client = await daemon.start()
    pid = daemon.runner_pids()[0]
    token = psutil.Process(pid).environ()[auth.ENV_RUNNER_TOKEN]
    done = await client.create(["true"])
    await client.events(done.id)
    done = await client.get(done.id)
    return World(daemon, client, auth.bearer(token), pid, done)


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]  # also checks code and message match the status
    assert status is not None, f"no rich status on {err.code()}: {err.details()}"
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    return infos[0]


async def _fail(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return caught.value


def _md(w: World) -> tuple[tuple[str, str]]:
    return w.client.md


Call = Callable[[World], Any]


@dataclass
class Case:
    id: str
    call: Call
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str | Callable[[World], str]]


def _create(spec: task_pb2.TaskSpec, request_id: str = "") -> Call:
    return lambda w: w.client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec, request_id=request_id), metadata=_md(w)
    )


def _cmd(**fields: Any) -> task_pb2.TaskSpec:
    return task_pb2.TaskSpec(command=task_pb2.CommandSpec(**fields))


async def _reused(w: World) -> Any:
    await _create(_cmd(argv=["true"]), "req-1")(w)
    return await _create(_cmd(argv=["false"]), "req-1")(w)


CASES = [
    # TaskService
    Case(
        "create-bad-field",
        _create(_cmd(argv=[])),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "spec.command.argv"},
    ),
    Case(
        "create-secret-in-prompt",
        _create(task_pb2.TaskSpec(agent=task_pb2.AgentSpec(prompt=f"use {SECRET}"))),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "spec.agent.prompt"},
    ),
    Case(
        "create-long-request-id",
        _create(_cmd(argv=["true"]), "r" * 500),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "request_id"},
    ),
    Case(
        "create-request-id-reused",
        _reused,
        C.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
        {"request_id": "req-1"},
    ),
    Case(
        "get-unknown",
        lambda w: w.client.tasks.GetTask(
            task_service_pb2.GetTaskRequest(task_id="t-nope"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    Case(
        "cancel-unknown",
        lambda w: w.client.tasks.CancelTask(
            task_service_pb2.CancelTaskRequest(task_id="t-nope"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    Case(
        "watch-unknown",
        lambda w: w.client.tasks.WatchTask(
            task_service_pb2.WatchTaskRequest(task_id="t-nope"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    Case(
        "list-page-size",
        lambda w: w.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(page_size=100_000), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "page_size"},
    ),
    Case(
        "list-page-token",
        lambda w: w.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(page_token="abc"), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "page_token"},
    ),
    Case(
        "list-state",
        lambda w: w.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(states=[99]),  # type: ignore[list-item]
            metadata=_md(w),
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "states[0]"},
    ),
    Case(
        "approve-unknown-task",
        lambda w: w.client.tasks.ApproveAction(
            task_service_pb2.ApproveActionRequest(task_id="t-nope", approval_id="a-1"),
            metadata=_md(w),
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    Case(
        "approve-unknown-approval",
        lambda w: w.client.tasks.ApproveAction(
            task_service_pb2.ApproveActionRequest(task_id=w.done_task.id, approval_id="a-1"),
            metadata=_md(w),
        ),
        C.NOT_FOUND,
        "APPROVAL_NOT_FOUND",
        {"approval_id": "a-1", "task_id": lambda w: w.done_task.id},
    ),
    Case(
        "audit-unknown-task",
        lambda w: w.client.tasks.ListAudit(
            task_service_pb2.ListAuditRequest(task_id="t-nope"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    # EventService
    Case(
        "subscribe-bad-type",
        lambda w: event_service_pb2_grpc.EventServiceStub(w.client.channel).Subscribe(
            event_service_pb2.SubscribeRequest(event_types=["nonsense"]), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "event_types"},
    ),
    # RunnerService
    Case(
        "start-unknown-runner",
        lambda w: w.client.runners.StartRunner(
            runner_service_pb2.RunnerRequest(runner_id="runner-9"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "RUNNER_NOT_FOUND",
        {"runner_id": "runner-9"},
    ),
    Case(
        "stop-names-none",
        lambda w: w.client.runners.StopRunner(runner_service_pb2.RunnerRequest(), metadata=_md(w)),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "runner_id"},
    ),
    Case(
        "scale-too-many",
        lambda w: w.client.runners.ScaleRunners(
            runner_service_pb2.ScaleRunnersRequest(count=10_000), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "count"},
    ),
    Case(
        "tail-unknown-runner",
        lambda w: w.client.runners.TailRunnerLog(
            runner_service_pb2.TailRunnerLogRequest(runner_id="runner-9"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "RUNNER_NOT_FOUND",
        {"runner_id": "runner-9"},
    ),
    Case(
        "tail-past-end",
        lambda w: w.client.runners.TailRunnerLog(
            runner_service_pb2.TailRunnerLogRequest(runner_id="runner-0", offset=10**12),
            metadata=_md(w),
        ),
        C.OUT_OF_RANGE,
        "LOG_OFFSET_PAST_END",
        {"runner_id": "runner-0", "offset": str(10**12)},
    ),
    # SecretService (this daemon has no keyring to reach)
    Case(
        "secret-bad-name",
        lambda w: secret_service_pb2_grpc.SecretServiceStub(w.client.channel).SetSecret(
            secret_service_pb2.SetSecretRequest(name="not a name", value="x"), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "name"},
    ),
    Case(
        "secret-empty-value",
        lambda w: secret_service_pb2_grpc.SecretServiceStub(w.client.channel).SetSecret(
            secret_service_pb2.SetSecretRequest(name="GITHUB_TOKEN"), metadata=_md(w)
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "value"},
    ),
    # SkillService
    Case(
        "skill-unknown",
        lambda w: skill_service_pb2_grpc.SkillServiceStub(w.client.channel).GetSkill(
            skill_service_pb2.GetSkillRequest(name="no-such-skill"), metadata=_md(w)
        ),
        C.NOT_FOUND,
        "SKILL_NOT_FOUND",
        {"name": "no-such-skill"},
    ),
    # Auth
    Case(
        "token-missing",
        lambda w: w.client.tasks.ListTasks(task_service_pb2.ListTasksRequest()),
        C.UNAUTHENTICATED,
        "TOKEN_MISSING",
        {"method": "/stigmer.local.v1.TaskService/ListTasks"},
    ),
    Case(
        "token-invalid",
        lambda w: w.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(), metadata=auth.bearer("wrong")
        ),
        C.UNAUTHENTICATED,
        "TOKEN_INVALID",
        {"method": "/stigmer.local.v1.TaskService/ListTasks"},
    ),
    Case(
        "token-invalid-on-stream",
        lambda w: w.client.tasks.WatchTask(
            task_service_pb2.WatchTaskRequest(task_id="t-x"), metadata=auth.bearer("wrong")
        ),
        C.UNAUTHENTICATED,
        "TOKEN_INVALID",
        {"method": "/stigmer.local.v1.TaskService/WatchTask"},
    ),
    Case(
        "client-token-on-worker",
        lambda w: w.client.worker.Register(
            worker_service_pb2.RegisterRequest(runner_id="runner-0"), metadata=_md(w)
        ),
        C.PERMISSION_DENIED,
        "CLIENT_TOKEN_ON_WORKER_API",
        {"method": "/stigmer.local.v1.WorkerService/Register"},
    ),
    Case(
        "runner-token-on-client",
        lambda w: w.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(), metadata=w.runner_md
        ),
        C.PERMISSION_DENIED,
        "RUNNER_TOKEN_ON_CLIENT_API",
        {"method": "/stigmer.local.v1.TaskService/ListTasks"},
    ),
    # WorkerService, with runner-0's own token
    Case(
        "token-of-another-runner",
        lambda w: w.client.worker.Heartbeat(
            worker_service_pb2.HeartbeatRequest(runner_id="runner-5"), metadata=w.runner_md
        ),
        C.PERMISSION_DENIED,
        "TOKEN_OF_ANOTHER_RUNNER",
        {"runner_id": "runner-5"},
    ),
    Case(
        "register-again",
        lambda w: w.client.worker.Register(
            worker_service_pb2.RegisterRequest(runner_id="runner-0", pid=w.runner_pid),
            metadata=w.runner_md,
        ),
        C.ABORTED,
        "RUNNER_NOT_EXPECTED",
        {"runner_id": "runner-0"},
    ),
    Case(
        "negative-wait",
        lambda w: w.client.worker.ClaimTask(
            worker_service_pb2.ClaimTaskRequest(runner_id="runner-0", wait_seconds=-1),
            metadata=w.runner_md,
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "wait_seconds"},
    ),
    Case(
        "heartbeat-unknown-task",
        lambda w: w.client.worker.Heartbeat(
            worker_service_pb2.HeartbeatRequest(runner_id="runner-0", task_id="t-nope"),
            metadata=w.runner_md,
        ),
        C.NOT_FOUND,
        "TASK_NOT_FOUND",
        {"task_id": "t-nope"},
    ),
    Case(
        "publish-to-ended-task",
        lambda w: w.client.worker.PublishEvents(
            worker_service_pb2.PublishEventsRequest(
                runner_id="runner-0", task_id=w.done_task.id, attempt=1, first_index=99
            ),
            metadata=w.runner_md,
        ),
        C.FAILED_PRECONDITION,
        "ATTEMPT_NOT_HELD",
        {"task_id": lambda w: w.done_task.id, "attempt": "1", "state": "SUCCEEDED"},
    ),
    Case(
        "publish-index-zero",
        lambda w: w.client.worker.PublishEvents(
            worker_service_pb2.PublishEventsRequest(
                runner_id="runner-0", task_id=w.done_task.id, attempt=1, first_index=0
            ),
            metadata=w.runner_md,
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "first_index"},
    ),
    Case(
        "approval-timeout-out-of-range",
        lambda w: w.client.worker.RequestApproval(
            worker_service_pb2.RequestApprovalRequest(
                runner_id="runner-0", task_id=w.done_task.id, attempt=1, timeout_seconds=0
            ),
            metadata=w.runner_md,
        ),
        C.INVALID_ARGUMENT,
        "INVALID_FIELD",
        {"field": "timeout_seconds"},
    ),
    # No such method: the daemon answers, not gRPC's bare default.
    Case(
        "unknown-method",
        lambda w: w.client.channel.unary_unary("/stigmer.local.v1.TaskService/Nope", None, None)(
            b"", metadata=_md(w)
        ),
        C.UNIMPLEMENTED,
        "UNIMPLEMENTED",
        {"method": "/stigmer.local.v1.TaskService/Nope"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_error_carries_error_info(world: World, case: Case) -> None:
    err = await _fail(case.call(world))
    assert err.code() == case.code, err.details()
    info = error_info(err)
    assert info.domain == "stigmer.local"
    assert info.reason == case.reason, err.details()
    want = {k: v if isinstance(v, str) else v(world) for k, v in case.metadata.items()}
    assert dict(info.metadata) == {**dict(info.metadata), **want}, info.metadata
    assert SECRET not in (err.details() or "") and SECRET not in str(info)
    # The daemon keeps serving.
    assert (await world.client.status()).pid > 0


async def test_keyring_errors_carry_a_reason(world: World) -> None:
    secrets = secret_service_pb2_grpc.SecretServiceStub(world.client.channel)
    err = await _fail(
        secrets.DeleteSecret(
            secret_service_pb2.DeleteSecretRequest(name="GITHUB_TOKEN"), metadata=world.client.md
        )
    )
    info = error_info(err)
    # No keyring in this daemon's world: either it says so, or the secret is not stored.
    assert (err.code(), info.reason) in {
        (C.FAILED_PRECONDITION, "KEYRING_UNAVAILABLE"),
        (C.NOT_FOUND, "SECRET_NOT_FOUND"),
    }, err.details()
    assert info.metadata["name"] == "GITHUB_TOKEN"


async def test_oversized_message_is_grpcs_own_status(world: World) -> None:
    """gRPC refuses a message over the limit before any handler runs: that status has no
    ErrorInfo (documented in docs/api.md)."""
    err = await _fail(_create(_cmd(argv=["x" * (5 * 1024 * 1024)]))(world))
    assert err.code() == C.RESOURCE_EXHAUSTED
    assert rpc_status.from_call(err) is None  # type: ignore[arg-type]
