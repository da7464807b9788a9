"""The gRPC API with no runners: validation, auth, idempotency, paging, watching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import task_pb2, task_service_pb2
from tests.support import Client, Daemon, write_config

QUEUED = task_pb2.TASK_STATE_QUEUED


@pytest.fixture
async def client(daemon: Daemon, home: Path) -> Client:
    write_config(home, '[daemon]\ntcp_address = ""\n[runners]\ncount = 0\n')
    return await daemon.start()


async def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


def _create(client: Client, spec: task_pb2.TaskSpec, request_id: str = "") -> Any:
    return client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec, request_id=request_id), metadata=client.md
    )


def cmd(**fields: object) -> task_pb2.TaskSpec:
    workspace = fields.pop("workspace", None)
    spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(**fields))  # type: ignore[arg-type]
    if workspace is not None:
        spec.workspace.path = str(workspace)
    return spec


@pytest.mark.parametrize(
    ("spec", "field", "hint"),
    [
        (task_pb2.TaskSpec(), "spec", "spec.command"),
        (cmd(argv=[]), "spec.command.argv", "program and its arguments"),
        (cmd(argv=[""]), "spec.command.argv[0]", "name the program"),
        (cmd(argv=["x"], timeout_seconds=-1), "spec.command.timeout_seconds", "86400"),
        (cmd(argv=["x"], timeout_seconds=1e12), "spec.command.timeout_seconds", "86400"),
        (cmd(argv=["x"], timeout_seconds=float("nan")), "spec.command.timeout_seconds", "from 0"),
        (cmd(argv=["x"], cwd="/does/not/exist"), "spec.command.cwd", "exists"),
        (cmd(argv=["x"], cwd="rel"), "spec.command.cwd", "absolute"),
        (cmd(argv=["x"], workspace="/does/not/exist"), "spec.workspace.path", "exists"),
        (cmd(argv=["x"], workspace="relative/dir"), "spec.workspace.path", "absolute"),
        (cmd(argv=["x"], env={"1BAD": "v"}), "spec.command.env", "letters"),
        (cmd(argv=["x"], env={"STIGMER_RUNNER_TOKEN": "v"}), "spec.command.env", "reserved"),
        (cmd(argv=["a\x00b"]), "spec.command.argv[0]", "NUL"),
    ],
)
async def test_bad_specs_are_invalid_argument_naming_the_field(
    client: Client, spec: task_pb2.TaskSpec, field: str, hint: str
) -> None:
    code, details = await _code(_create(client, spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field + ":"), details
    assert hint in details
    # The daemon keeps serving.
    assert (await client.status()).pid > 0


@pytest.mark.parametrize(
    ("agent", "field", "hint"),
    [
        (task_pb2.AgentSpec(prompt="  "), "spec.agent.prompt", "what the agent should do"),
        (task_pb2.AgentSpec(prompt="x", policy_level=9), "spec.agent.policy_level", "SUPERVISED"),  # type: ignore[arg-type]
        (
            task_pb2.AgentSpec(prompt="x", allow_rules=["bash(ls"]),
            "spec.agent.allow_rules",
            "tool(pattern)",
        ),
        (task_pb2.AgentSpec(prompt="x", model="bad model"), "spec.agent.model", "model name"),
        (
            task_pb2.AgentSpec(prompt="x", limits=task_pb2.AgentLimits(max_turns=10**6)),
            "spec.agent.limits.max_turns",
            "10000",
        ),
        (
            task_pb2.AgentSpec(
                prompt="x",
                constraints=task_pb2.AgentConstraints(allowed_write_globs=["/etc/**"]),
            ),
            "spec.agent.constraints.allowed_write_globs",
            "relative",
        ),
        (
            task_pb2.AgentSpec(prompt="use sk-ant-api03-abcdefghijklmnopqrst"),
            "spec.agent.prompt",
            "secret",
        ),
    ],
)
async def test_bad_agent_specs_name_the_field(
    client: Client, agent: task_pb2.AgentSpec, field: str, hint: str
) -> None:
    code, details = await _code(_create(client, task_pb2.TaskSpec(agent=agent)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field), details
    assert hint in details
    assert "abcdefghijklmnopqrst" not in details


async def test_agent_task_gets_the_configured_defaults(client: Client) -> None:
    task = await _create(client, task_pb2.TaskSpec(agent=task_pb2.AgentSpec(prompt="fix it")))
    agent = task.spec.agent
    assert task.state == QUEUED
    assert agent.model == "claude-sonnet-5-5" and agent.max_tokens == 8192
    assert agent.policy_level == task_pb2.POLICY_LEVEL_SUPERVISED
    assert agent.limits.max_turns == 50 and agent.limits.max_cost_usd == 5.0
    assert agent.approval_timeout_seconds == 120


async def test_git_workspace_is_checked(client: Client, tmp_path: Path) -> None:
    spec = task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=["ls"]))
    spec.workspace.git.url = ""
    spec.workspace.git.branch = "main"
    code, details = await _code(_create(client, spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "spec.workspace.git.url" in details
    spec.workspace.path = str(tmp_path)
    spec.workspace.git.url = str(tmp_path)
    code, details = await _code(_create(client, spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not both" in details


async def test_oversized_request_is_resource_exhausted(client: Client) -> None:
    code, _ = await _code(_create(client, cmd(argv=["echo", "x" * (5 * 1024 * 1024)])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, details = await _code(_create(client, cmd(argv=["echo"] + ["x" * 1000] * 300)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "in a file" in details


async def test_unknown_task_is_not_found(client: Client) -> None:
    for call in (
        client.tasks.GetTask(task_service_pb2.GetTaskRequest(task_id="t-nope"), metadata=client.md),
        client.tasks.CancelTask(
            task_service_pb2.CancelTaskRequest(task_id="t-nope"), metadata=client.md
        ),
        client.events("t-nope"),
    ):
        code, details = await _code(call)
        assert code == grpc.StatusCode.NOT_FOUND and "t-nope" in details


async def test_token_is_required(client: Client) -> None:
    request = task_service_pb2.ListTasksRequest()
    code, details = await _code(client.tasks.ListTasks(request))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "token" in details
    code, _ = await _code(
        client.tasks.ListTasks(request, metadata=(("authorization", "Bearer x"),))
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # A client token is refused on the runners' service.
    from protos import worker_service_pb2

    code, _ = await _code(
        client.worker.Register(
            worker_service_pb2.RegisterRequest(runner_id="runner-0"), metadata=client.md
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_create_is_idempotent_by_request_id(client: Client) -> None:
    first = await _create(client, cmd(argv=["echo", "hi"]), "req-7")
    again = await _create(client, cmd(argv=["echo", "hi"]), "req-7")
    assert first.id == again.id and first.state == QUEUED  # type: ignore[attr-defined]
    code, details = await _code(_create(client, cmd(argv=["echo", "other"]), "req-7"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "req-7" in details


async def test_list_pages_and_filters(client: Client) -> None:
    ids = [(await client.create(["echo", str(i)])).id for i in range(5)]
    await client.tasks.CancelTask(
        task_service_pb2.CancelTaskRequest(task_id=ids[0]), metadata=client.md
    )
    seen: list[str] = []
    token = ""
    while True:
        page = await client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(page_size=2, page_token=token), metadata=client.md
        )
        seen.extend(t.id for t in page.tasks)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    queued = await client.tasks.ListTasks(
        task_service_pb2.ListTasksRequest(states=[QUEUED]), metadata=client.md
    )
    assert [t.id for t in queued.tasks] == list(reversed(ids[1:]))
    code, details = await _code(
        client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(page_token="zz"), metadata=client.md
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token")
    code, _ = await _code(
        client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(states=[99]),  # type: ignore[list-item]
            metadata=client.md,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_cancel_of_queued_task_ends_its_watch(client: Client) -> None:
    task = await client.create(["sleep", "100"])
    for _ in range(2):  # idempotent
        cancelled = await client.tasks.CancelTask(
            task_service_pb2.CancelTaskRequest(task_id=task.id), metadata=client.md
        )
        assert cancelled.state == task_pb2.TASK_STATE_CANCELLED
    events = await client.events(task.id)
    assert [e.WhichOneof("payload") for e in events] == ["queued", "finished"]
    assert [e.seq for e in events] == [1, 2]
    assert await client.events(task.id, after_seq=1) == events[1:]
    assert await client.events(task.id, after_seq=2) == []


async def test_health_and_reflection(client: Client) -> None:
    health = await client.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([request]), metadata=client.md):
        names.update(s.name for s in response.list_services_response.service)
    for service in (
        "TaskService",
        "EventService",
        "RunnerService",
        "SecretService",
        "SkillService",
        "DaemonService",
        "WorkerService",
    ):
        assert f"stigmer.local.v1.{service}" in names


async def test_second_daemon_on_same_state_is_refused(client: Client, daemon: Daemon) -> None:
    second = daemon.run_to_exit()
    assert second.returncode == 2
    assert daemon.process is not None
    assert b"already running" in second.stderr
    assert f"pid {daemon.process.pid}".encode() in second.stderr
    assert (await client.status()).pid == daemon.process.pid


async def test_malformed_config_is_refused_with_the_key(home: Path) -> None:
    write_config(home, "[runners]\ncount = 'many'\n")
    daemon = Daemon(home)
    result = daemon.run_to_exit()
    assert result.returncode == 1
    assert b"runners.count = 'many' is not allowed" in result.stderr


async def test_socket_token_and_folders_are_private(client: Client, daemon: Daemon) -> None:
    p = daemon.paths
    assert p.socket.stat().st_mode & 0o777 == 0o600
    assert p.runtime_dir.stat().st_mode & 0o777 == 0o700
    assert p.token_file.stat().st_mode & 0o777 == 0o600
    assert p.state_dir.stat().st_mode & 0o777 == 0o700


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_tcp_listener_needs_the_token_too(home: Path) -> None:
    port = _free_port()
    write_config(home, f'[daemon]\ntcp_address = "127.0.0.1:{port}"\n[runners]\ncount = 0\n')
    daemon = Daemon(home)
    try:
        unix = await daemon.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            tcp = Client(channel, unix.token)
            assert (await tcp.status()).tcp_address == f"127.0.0.1:{port}"
            code, _ = await _code(tcp.tasks.ListTasks(task_service_pb2.ListTasksRequest()))
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for channel in daemon.channels:
            await channel.close(None)
        daemon.stop()


async def test_tcp_address_in_use_is_a_clear_refusal(home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(home, f'[daemon]\ntcp_address = "127.0.0.1:{port}"\n')
        result = Daemon(home).run_to_exit()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}".encode() in result.stderr
    assert b"tcp_address" in result.stderr
