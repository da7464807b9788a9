"""Secrets with a real keyring, real runners and real tool processes: where a key may
go (a runner's environment, a task that asks for it) and everywhere it must not."""

from __future__ import annotations

import secrets as random_secrets
import uuid
from pathlib import Path

import grpc
import psutil
import pytest

from protos import (
    event_pb2,
    runner_service_pb2,
    secret_service_pb2,
    secret_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
)
from tests.support import Client, Daemon, output_of, processes_with, wait_until, write_config

PROVIDER = "ANTHROPIC_API_KEY"
CONFIG = '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n'


def canary() -> str:
    return "sk-ant-canary-" + random_secrets.token_hex(16)


def stub(client: Client) -> secret_service_pb2_grpc.SecretServiceAsyncStub:
    return secret_service_pb2_grpc.SecretServiceStub(client.channel)


async def set_secret(client: Client, name: str, value: str) -> secret_service_pb2.SecretInfo:
    return await stub(client).SetSecret(
        secret_service_pb2.SetSecretRequest(name=name, value=value), metadata=client.md
    )


async def runner_environ(client: Client, old_pid: int = 0) -> dict[str, str]:
    """The environment of runner-0 once it is RUNNING as a process other than `old_pid`."""

    async def fresh() -> int:
        answer = await client.runners.ListRunners(
            runner_service_pb2.ListRunnersRequest(), metadata=client.md
        )
        r = answer.runners[0]
        running = r.state == 3  # RUNNER_STATE_RUNNING
        return r.pid if running and r.pid not in (0, old_pid) else 0

    pid = await wait_until(fresh, 20, "a runner with the current secrets")
    environ: dict[str, str] = psutil.Process(pid).environ()
    environ["_pid"] = str(pid)
    return environ


@pytest.fixture
async def keyring_daemon(daemon: Daemon, keyring_env: dict[str, str]) -> Daemon:
    write_config(daemon.home, CONFIG)
    daemon.extra_env = dict(keyring_env)
    return daemon


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_canary_reaches_the_runner_and_nowhere_else(keyring_daemon: Daemon) -> None:
    daemon = keyring_daemon
    client = await daemon.start()
    key = canary()
    before = await runner_environ(client)
    info = await set_secret(client, PROVIDER, key)
    assert info.source == secret_service_pb2.SECRET_SOURCE_KEYRING and info.hint == "…" + key[-4:]
    # The runner is restarted to pick it up, and holds it.
    runner_env = await runner_environ(client, int(before["_pid"]))
    assert runner_env[PROVIDER] == key
    assert PROVIDER in runner_env["STIGMER_SECRET_NAMES"].split(",")
    # A tool process does not get it.
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    task = await client.create(["sh", "-c", f"env; sleep {marker}"])
    tool = (await wait_until(lambda: processes_with("sleep", marker), what="the tool"))[0]
    assert PROVIDER not in tool.environ()
    assert key.encode() not in Path(f"/proc/{tool.pid}/environ").read_bytes()
    tool.kill()
    events = await client.events(task.id)
    assert key.encode() not in output_of(events) and b"ANTHROPIC_API_KEY" not in output_of(events)
    # Nor is it in any reply, stored row, file or log.
    listed = await stub(client).ListSecrets(
        secret_service_pb2.ListSecretsRequest(), metadata=client.md
    )
    assert key not in str(listed) and key not in str(events)
    assert key not in str(await client.get(task.id))
    assert files_containing(daemon.paths.state_dir, key.encode()) == []
    assert key not in daemon.log_text()
    assert daemon.process is not None
    assert key.encode() not in Path(f"/proc/{daemon.process.pid}/environ").read_bytes()


async def test_a_key_in_a_spec_is_refused_and_not_echoed(keyring_daemon: Daemon) -> None:
    client = await keyring_daemon.start()
    key = canary()
    await set_secret(client, "SOME_TOKEN", key)
    for argv in (["echo", key], ["echo", "sk-ant-api03-" + "x" * 40]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.create(argv)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = caught.value.details() or ""
        assert "spec.command.argv[1]" in details and "stigmer secrets set" in details
        assert key not in details and "x" * 40 not in details
    with pytest.raises(grpc.aio.AioRpcError):
        await client.create(["env"], env={"TOKEN": key})


async def test_a_task_waits_for_its_secret_and_its_output_is_redacted(
    keyring_daemon: Daemon,
) -> None:
    client = await keyring_daemon.start()
    value = "ghp_" + random_secrets.token_hex(20)
    command = task_pb2.CommandSpec(
        argv=["sh", "-c", 'echo "token=$GH_TOKEN"'], secrets=["GH_TOKEN"]
    )
    task = await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=task_pb2.TaskSpec(command=command)),
        metadata=client.md,
    )

    async def waiting() -> event_pb2.SecretRequired | None:
        batch = await _stored_events(client, task.id)
        found = [e.secret_required for e in batch if e.HasField("secret_required")]
        return found[0] if found else None

    required = await wait_until(waiting, what="the secret_required event")
    assert required.name == "GH_TOKEN" and required.HasField("deadline")
    await set_secret(client, "GH_TOKEN", value)
    events = await client.events(task.id)
    assert events[-1].finished.state == task_pb2.TASK_STATE_SUCCEEDED
    # The program got the value; what it printed is redacted on its way in.
    assert output_of(events) == b"token=[REDACTED]\n"


async def _stored_events(client: Client, task_id: str) -> list[event_pb2.Event]:
    """The events stored so far, without waiting for the task to finish."""
    task = await client.get(task_id)
    events: list[event_pb2.Event] = []
    if not task.last_seq:
        return events
    call = client.tasks.WatchTask(
        task_service_pb2.WatchTaskRequest(task_id=task_id), metadata=client.md
    )
    async for batch in call:
        events.extend(batch.events)
        if events[-1].seq >= task.last_seq:
            call.cancel()
            break
    return events


async def test_rotation_reaches_the_next_runner(keyring_daemon: Daemon) -> None:
    client = await keyring_daemon.start()
    first, second = canary(), canary()
    old = await runner_environ(client)
    await set_secret(client, PROVIDER, first)
    env = await runner_environ(client, int(old["_pid"]))
    assert env[PROVIDER] == first
    await set_secret(client, PROVIDER, second)
    env = await runner_environ(client, int(env["_pid"]))
    assert env[PROVIDER] == second


async def test_environment_secrets_stay_out_of_the_daemon_environment(
    daemon: Daemon, home: Path
) -> None:
    write_config(home, CONFIG)
    key = canary()
    client = await daemon.start(stdin_secrets={PROVIDER: key})
    assert daemon.process is not None
    assert key.encode() not in Path(f"/proc/{daemon.process.pid}/environ").read_bytes()
    env = await runner_environ(client)
    assert env[PROVIDER] == key
    listed = await stub(client).ListSecrets(
        secret_service_pb2.ListSecretsRequest(), metadata=client.md
    )
    provider = next(s for s in listed.secrets if s.name == PROVIDER)
    assert provider.source == secret_service_pb2.SECRET_SOURCE_ENVIRONMENT
    assert list(provider.required_by) == ["provider"]


async def test_without_a_keyring_set_secret_says_the_ways_out(daemon: Daemon, home: Path) -> None:
    write_config(home, CONFIG)
    client = await daemon.start()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await set_secret(client, PROVIDER, canary())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = caught.value.details() or ""
    assert "no usable keyring" in details and "--insecure-storage" in details
    assert "export ANTHROPIC_API_KEY" in details and "Secret Service" in details
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await set_secret(client, "lower-case", "value-value")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
