"""Security end to end: another local user, tokens through the installed CLI and on every
service, agent file tools against a real workspace, and the canary secret in every lane.

What tests/api/test_api_errors.py (one call without or with a wrong token, socket and
folder modes), tests/e2e/test_secrets.py (the canary with a command task) and
tests/runner/test_tools_paths.py (path escapes at the tool level) already check is not
repeated here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets as random_secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from google.protobuf import descriptor as pb_descriptor

from protos import (
    daemon_service_pb2,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    runner_service_pb2,
    secret_service_pb2,
    skill_service_pb2,
    task_pb2,
    task_service_pb2,
    worker_service_pb2,
)
from shared import auth
from tests.fake_anthropic import (
    FakeAnthropic,
    fake_anthropic,
    reply,
    result_text,
    tool_results,
    tool_use,
)
from tests.fake_anthropic import text as text_block
from tests.support import (
    Client,
    Daemon,
    env_for,
    output_of,
    processes_with,
    stigmer,
    wait_until,
    write_config,
)

PROVIDER = "ANTHROPIC_API_KEY"
CLIENT_SERVICES: dict[str, Any] = {
    "TaskService": task_service_pb2,
    "EventService": event_service_pb2,
    "RunnerService": runner_service_pb2,
    "SecretService": secret_service_pb2,
    "SkillService": skill_service_pb2,
    "DaemonService": daemon_service_pb2,
}


# --- helpers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    path: str
    streaming: bool


def methods_of(module: Any, service: str) -> list[Method]:
    """Every method of `service`, from the generated descriptors (so a new one is covered)."""
    desc: pb_descriptor.ServiceDescriptor = module.DESCRIPTOR.services_by_name[service]
    return [Method(f"/{desc.full_name}/{m.name}", m.server_streaming) for m in desc.methods]


def _same(b: bytes) -> bytes:
    return b


async def call_code(
    channel: grpc.aio.Channel, method: Method, metadata: Any, request: bytes = b""
) -> tuple[grpc.StatusCode, str]:
    """Calls `method` with raw request bytes; the status it ends with."""
    try:
        if method.streaming:
            stream = channel.unary_stream(
                method.path, request_serializer=_same, response_deserializer=_same
            )(request, metadata=metadata, timeout=10)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(
                method.path, request_serializer=_same, response_deserializer=_same
            )(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


async def close(daemon: Daemon) -> None:
    for channel in daemon.channels:
        await channel.close(None)
    daemon.stop()
    daemon.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tree_pids(root_pid: int) -> list[psutil.Process]:
    """`root_pid` and all its descendants that are alive."""
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    return []


def runner_tokens(daemon: Daemon) -> dict[str, str]:
    """runner id -> token, read from each runner's /proc/<pid>/environ."""
    found: dict[str, str] = {}
    for pid in daemon.runner_pids():
        env = psutil.Process(pid).environ()
        found[env[auth.ENV_RUNNER_ID]] = env[auth.ENV_RUNNER_TOKEN]
    return found


# --- 1. another local user -------------------------------------------------------------

# Run as the other user: stdin holds what to try (and the right token, never in argv).
# Prints one JSON object: for each attempt "ok" or the errno / gRPC status name.
PROBE = r"""
import errno, json, os, socket, sys
job = json.load(sys.stdin)
out = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups()}
def err(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = err(e)
def connect():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(job["socket"])
attempt("socket_connect", connect)
attempt("token_read", lambda: open(job["token_file"]).read())
attempt("runtime_list", lambda: os.listdir(job["runtime_dir"]))
attempt("state_list", lambda: os.listdir(job["state_dir"]))
attempt("database_read", lambda: open(job["database"], "rb").read(1))
import grpc
def status(target, token):
    same = lambda b: b
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary("/stigmer.local.v1.DaemonService/GetStatus",
                              request_serializer=same, response_deserializer=same)
        md = [("authorization", "Bearer " + token)] if token is not None else []
        try:
            call(b"", metadata=md, timeout=5)
            return ["OK", ""]
        except grpc.RpcError as e:
            return [e.code().name, e.details() or ""]
out["grpc_unix"] = status("unix://" + job["socket"], job["token"])
if job["tcp"]:
    out["tcp_no_token"] = status(job["tcp"], None)
    out["tcp_wrong_token"] = status(job["tcp"], "not-" + job["token"])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Probe:
    python: str
    env: dict[str, str]


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway system user, removed afterwards even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second local user (run the suite as root, as CI does)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed")
    name = "stigmer-test-" + random_secrets.token_hex(4)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            pytest.fail(f"userdel {name} did not remove the test user")


@pytest.fixture
def public_home() -> Iterator[Path]:
    """A STIGMER_HOME other users may walk into, so only the daemon's own modes stop them
    (pytest's tmp_path sits under a 0700 folder, which would stop them first)."""
    root = Path(tempfile.mkdtemp(prefix="stigmer-sec-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_probe(
    probe: Probe, job: dict[str, Any], user: pwd.struct_passwd | None = None
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if user is not None:
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    result = subprocess.run(
        [probe.python, "-c", PROBE],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        env=probe.env,
        cwd="/",
        **extra,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def find_probe(user: pwd.struct_passwd) -> Probe:
    """An interpreter the other user may run that imports grpc: ours, or the system's
    python3.11 on our site-packages (ours may sit under root's 0700 home)."""
    site = sysconfig.get_paths()["purelib"]
    base = {"PATH": os.defpath, "HOME": "/", "LANG": "C.UTF-8"}
    candidates = [Probe(sys.executable, base)]
    for python in (f"/usr/bin/python3.{sys.version_info.minor}", "/usr/bin/python3"):
        if Path(python).exists():
            candidates.append(Probe(python, {**base, "PYTHONPATH": site}))
    for probe in candidates:
        try:
            check = subprocess.run(
                [probe.python, "-c", "import grpc"],
                env=probe.env,
                cwd="/",
                capture_output=True,
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
            )
        except PermissionError:  # not theirs to run
            continue
        if check.returncode == 0:
            return probe
    pytest.skip(f"no Python with grpc that user {user.pw_name} may run")


def probe_job(daemon: Daemon, token: str, tcp: str = "") -> dict[str, Any]:
    p = daemon.paths
    return {
        "socket": str(p.socket),
        "token_file": str(p.token_file),
        "runtime_dir": str(p.runtime_dir),
        "state_dir": str(p.state_dir),
        "database": str(p.database),
        "token": token,
        "tcp": tcp,
    }


@contextlib.contextmanager
def loosened(*folders: Path) -> Iterator[None]:
    """Opens `folders` to everyone for a moment, so the files inside must hold on their own."""
    modes = {f: f.stat().st_mode & 0o777 for f in folders}
    try:
        for folder in folders:
            folder.chmod(0o755)
        yield
    finally:
        for folder, mode in modes.items():
            folder.chmod(mode)


async def test_another_user_cannot_use_the_socket_or_read_the_token(
    other_user: pwd.struct_passwd, public_home: Path
) -> None:
    write_config(public_home, '[daemon]\ntcp_address = ""\n[runners]\ncount = 0\n')
    daemon = Daemon(public_home)
    try:
        client = await daemon.start()
        probe = find_probe(other_user)
        job = probe_job(daemon, client.token)
        # The control: the daemon's own user gets everything with the same script.
        mine = run_probe(probe, job)
        assert mine["uid"] == 0
        assert {k: mine[k] for k in ("socket_connect", "token_read", "runtime_list")} == {
            "socket_connect": "ok",
            "token_read": "ok",
            "runtime_list": "ok",
        }
        assert mine["grpc_unix"] == ["OK", ""]
        # The other user, even with the right token in hand, gets nowhere.
        theirs = run_probe(probe, job, other_user)
        assert theirs["uid"] == theirs["euid"] == other_user.pw_uid and theirs["groups"] in (
            [],
            [other_user.pw_gid],
        )
        for attempt in ("socket_connect", "token_read", "runtime_list", "state_list"):
            assert theirs[attempt] == "EACCES", (attempt, theirs)
        assert theirs["database_read"] == "EACCES", theirs
        code, details = theirs["grpc_unix"]
        assert code == "UNAVAILABLE" and "ermission denied" in details, theirs
        # Each layer holds on its own: with the folders opened up, the socket's and the
        # token file's own 0600 modes still stop the other user.
        p = daemon.paths
        with loosened(p.runtime_dir, p.state_dir):
            theirs = run_probe(probe, job, other_user)
        assert theirs["runtime_list"] == "ok" and theirs["state_list"] == "ok"  # really open
        assert theirs["socket_connect"] == "EACCES", theirs
        assert theirs["token_read"] == "EACCES", theirs
        assert theirs["grpc_unix"][0] == "UNAVAILABLE", theirs
        assert p.runtime_dir.stat().st_mode & 0o777 == 0o700
        assert (await client.status()).pid == daemon.process.pid  # type: ignore[union-attr]
    finally:
        await close(daemon)


async def test_another_user_reaches_tcp_but_needs_the_token(
    other_user: pwd.struct_passwd, public_home: Path
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    write_config(public_home, f'[daemon]\ntcp_address = "{address}"\n[runners]\ncount = 0\n')
    daemon = Daemon(public_home)
    try:
        client = await daemon.start()
        probe = find_probe(other_user)
        theirs = run_probe(probe, probe_job(daemon, client.token, address), other_user)
        # The port answers them (the daemon itself refuses, not the network)...
        code, details = theirs["tcp_no_token"]
        assert code == "UNAUTHENTICATED" and "missing token" in details, theirs
        code, details = theirs["tcp_wrong_token"]
        assert code == "UNAUTHENTICATED" and "wrong token" in details, theirs
        # ...and the token they would need is out of their reach.
        assert theirs["token_read"] == "EACCES", theirs
        assert theirs["grpc_unix"][0] == "UNAVAILABLE", theirs
    finally:
        await close(daemon)


# --- 2. tokens end to end ---------------------------------------------------------------


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


async def test_a_corrupted_token_file_is_a_clear_cli_error(daemon: Daemon) -> None:
    await daemon.start()
    token_file = daemon.paths.token_file
    good = token_file.read_bytes()
    home = daemon.home
    try:
        # A token that is not the daemon's (or garbled but sendable): the daemon's message.
        for wrong in ("not-the-daemons-token", good.decode().strip()[:-3] + " x y"):
            token_file.write_text(wrong + "\n")
            result = stigmer(home, "task", "list")
            no_traceback(result)
            assert result.returncode == 1, result
            assert result.stderr == (
                "error: wrong token: read it again from the daemon's token file\n"
            )
        # An empty file: the CLI says so and how to get a new one.
        token_file.write_text("\n")
        result = stigmer(home, "task", "list")
        no_traceback(result)
        assert result.returncode == 1
        assert "missing or empty" in result.stderr and str(token_file) in result.stderr
        assert "stigmer local restart" in result.stderr
    finally:
        token_file.write_bytes(good)
    result = stigmer(home, "task", "list")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            b"\xff\xfe\x00garbage\x80\n",
            id="not-utf8",
        ),
        pytest.param(
            "tok\u00e9n-\u2603\n".encode(),
            id="non-ascii",
        ),
        pytest.param(
            b"two\nlines\n",
            id="inner-newline",
        ),
    ],
)
async def test_an_unsendable_token_file_names_the_file(daemon: Daemon, content: bytes) -> None:
    await daemon.start()
    token_file = daemon.paths.token_file
    token_file.write_bytes(content)
    result = stigmer(daemon.home, "task", "list")
    no_traceback(result)
    assert result.returncode == 1
    # One line of our own: no gRPC log lines, no internal exception names.
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "unexpected" not in result.stderr and "grpc" not in result.stderr, result.stderr
    assert str(token_file) in result.stderr, result.stderr


async def test_no_token_or_a_wrong_one_is_refused_on_every_method(daemon: Daemon) -> None:
    client = await daemon.start()
    wrong = auth.bearer(auth.new_token())
    services = {**CLIENT_SERVICES, "WorkerService": worker_service_pb2}
    for service, module in services.items():
        for method in methods_of(module, service):
            code, details = await call_code(client.channel, method, ())
            assert code == grpc.StatusCode.UNAUTHENTICATED, (method.path, code)
            assert "missing token" in details
            code, details = await call_code(client.channel, method, wrong)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (method.path, code)
            assert "wrong token" in details
            # A token sent without the Bearer scheme counts as none.
            code, _ = await call_code(client.channel, method, (("authorization", client.token),))
            assert code == grpc.StatusCode.UNAUTHENTICATED, (method.path, code)
    assert (await client.status()).runners_running == 2


async def test_runner_and_client_tokens_stay_on_their_side(daemon: Daemon) -> None:
    client = await daemon.start()
    tokens = runner_tokens(daemon)
    assert sorted(tokens) == ["runner-0", "runner-1"], tokens
    assert client.token not in tokens.values()
    assert len(set(tokens.values())) == 2
    runner_md = auth.bearer(tokens["runner-0"])
    # A runner's token on every method of every client service.
    for service, module in CLIENT_SERVICES.items():
        for method in methods_of(module, service):
            code, details = await call_code(client.channel, method, runner_md)
            assert code == grpc.StatusCode.PERMISSION_DENIED, (method.path, code, details)
            assert "WorkerService only" in details
    # The client's token on every method of WorkerService.
    worker_methods = methods_of(worker_service_pb2, "WorkerService")
    assert len(worker_methods) == 6
    for method in worker_methods:
        code, details = await call_code(client.channel, method, client.md)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (method.path, code)
        assert "runners only" in details
    # runner-0's token speaking for runner-1, on every WorkerService method.
    for method in worker_methods:
        request = _worker_request(method.path.rsplit("/", 1)[1], "runner-1")
        code, details = await call_code(client.channel, method, runner_md, request)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (method.path, code)
        assert "does not belong to runner 'runner-1'" in details
    # The control: the same token for its own runner is accepted.
    beat = worker_service_pb2.HeartbeatRequest(runner_id="runner-0", wait_seconds=0)
    await client.worker.Heartbeat(beat, metadata=runner_md)
    # Nothing was disturbed: both runners still serve, and a task still runs.
    status = await client.status()
    assert status.runners_running == 2
    task = await client.create(["echo", "still fine"])
    events = await client.events(task.id)
    assert events[-1].finished.state == task_pb2.TASK_STATE_SUCCEEDED


def _worker_request(name: str, runner_id: str) -> bytes:
    cls = getattr(worker_service_pb2, f"{name}Request")
    fields: dict[str, Any] = {"runner_id": runner_id}
    if "task_id" in cls.DESCRIPTOR.fields_by_name:
        fields["task_id"] = "t-none"
    message = cls(**fields)
    data: bytes = message.SerializeToString()
    return data


async def test_tokens_are_in_no_command_line_or_log(daemon: Daemon) -> None:
    client = await daemon.start()
    tokens = [client.token, *runner_tokens(daemon).values()]
    assert len(tokens) == 3
    # Tool processes too: a running command task's programs.
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.25"
    task = await client.create(["sh", "-c", f"sleep {marker}; true"])
    tool = (await wait_until(lambda: processes_with("sleep", marker), what="the tool"))[0]
    assert daemon.process is not None
    processes = tree_pids(daemon.process.pid)
    assert len(processes) >= 4  # the daemon, two runners, the task's programs
    for proc in processes:
        cmdline = " ".join(proc.cmdline())
        for token in tokens:
            assert token not in cmdline, (proc.pid, "a token on a command line")
    # A tool process does not inherit its runner's token either.
    assert auth.ENV_RUNNER_TOKEN not in tool.environ()
    environ = Path(f"/proc/{tool.pid}/environ").read_bytes()
    assert not any(t.encode() in environ for t in tokens)
    tool.kill()
    await client.events(task.id)
    for path in daemon.paths.log_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(t.encode() in data for t in tokens), path
    assert not any(t in daemon.log_text() for t in tokens)


# --- 3. agent file tools cannot leave the workspace -----------------------------------


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


@pytest.fixture
async def agent_client(daemon: Daemon, api: FakeAnthropic) -> AsyncIterator[Client]:
    write_config(
        daemon.home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
        f'[agent]\nbase_url = "{api.base_url}"\n',
    )
    yield await daemon.start(stdin_secrets={PROVIDER: "sk-ant-test-x"})


async def create_agent(client: Client, prompt: str, workspace: Path) -> task_pb2.Task:
    spec = task_pb2.TaskSpec(
        agent=task_pb2.AgentSpec(prompt=prompt, policy_level=task_pb2.POLICY_LEVEL_AUTONOMOUS),
        workspace=task_pb2.Workspace(path=str(workspace)),
    )
    return await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec), metadata=client.md
    )


def snapshot(*roots: Path) -> dict[str, tuple[bool, bytes]]:
    """Every entry under `roots` (and the roots): is it a symlink, and its bytes."""
    found: dict[str, tuple[bool, bytes]] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            found[str(path)] = (path.is_symlink(), data)
    return found


async def test_agent_file_tools_cannot_leave_the_workspace(
    agent_client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    client = agent_client
    area = tmp_path / "area"
    workspace = area / "ws"
    outside = area / "outside"
    workspace.mkdir(parents=True)
    outside.mkdir()
    (area / "outside.txt").write_text("next door\n")
    (outside / "target.txt").write_text("top secret\n")
    (workspace / "inside.txt").write_text("inside\n")
    (workspace / "link").symlink_to(outside)
    (workspace / "flink.txt").symlink_to(outside / "target.txt")
    passwd = Path("/etc/passwd").read_bytes()
    before = snapshot(area / "outside.txt", outside)
    calls = [
        ("read_file", {"path": "../outside.txt"}, "../outside.txt"),
        ("read_file", {"path": "/etc/passwd"}, "/etc/passwd"),
        ("write_file", {"path": "link/x", "content": "pwned\n"}, "link/x"),
        (
            "edit_file",
            {"path": "flink.txt", "old_string": "top", "new_string": "pwned"},
            "flink.txt",
        ),
        ("list_dir", {"path": ".."}, ".."),
        ("grep", {"pattern": "root|secret|next door", "path": "/"}, "/"),
    ]
    api.script(
        reply(*[tool_use(name, args, f"toolu_{i}") for i, (name, args, _) in enumerate(calls)]),
        reply("I could not leave the workspace."),
    )
    task = await create_agent(client, "look around outside", workspace)
    events = await asyncio.wait_for(client.events(task.id), 60)
    end = events[-1].finished
    assert end.state == task_pb2.TASK_STATE_SUCCEEDED, end.result.error
    # What the model got back: an error for each call, naming the path it tried.
    assert len(api.message_requests) == 2
    results = {r["tool_use_id"]: r for r in tool_results(api.message_requests[1])}
    stored = {e.tool_result.call_id: e.tool_result for e in events if e.HasField("tool_result")}
    for i, (name, _, path) in enumerate(calls):
        call_id = f"toolu_{i}"
        sent = results[call_id]
        output = result_text(sent)
        assert sent.get("is_error") is True, (name, output)
        assert "outside the workspace" in output and path in output, (name, output)
        assert stored[call_id].is_error and "outside the workspace" in stored[call_id].output
        # Nothing from outside was read into the reply (naming a link's target is fine).
        for leaked in ("root:x:0:0", "top secret", "next door", "pwned"):
            assert leaked not in output, (name, leaked, output)
    # Nothing outside changed, nothing was created through the link, /etc/passwd intact.
    assert snapshot(area / "outside.txt", outside) == before
    assert not (outside / "x").exists()
    assert (workspace / "link").is_symlink() and (workspace / "flink.txt").is_symlink()
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not [e for e in events if e.HasField("artifact")]


# --- 4. the canary in every lane ------------------------------------------------------


def canary() -> str:
    return "sk-ant-canary-" + random_secrets.token_hex(16)


async def subscribe_all(client: Client) -> list[event_pb2.Event]:
    """Every event Subscribe(from_start) sends until it goes quiet."""
    stub = event_service_pb2_grpc.EventServiceStub(client.channel)
    call = stub.Subscribe(event_service_pb2.SubscribeRequest(from_start=True), metadata=client.md)
    events: list[event_pb2.Event] = []
    stream = call.__aiter__()
    while True:
        try:
            batch = await asyncio.wait_for(stream.__anext__(), 3)
        except (TimeoutError, StopAsyncIteration):
            break
        events.extend(batch.events)
        if batch.events and all(e.HasField("bookmark") for e in batch.events):
            break
    call.cancel()
    return events


def files_with(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_the_canary_appears_nowhere_it_must_not(
    daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    key = canary()
    write_config(
        daemon.home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 2\n[secrets]\nrequired = []\n'
        f'[agent]\nbase_url = "{api.base_url}"\n',
    )
    client = await daemon.start(stdin_secrets={PROVIDER: key})
    needle = key.encode()
    assert daemon.process is not None
    # The runners hold it: that is where it must be.
    for pid in daemon.runner_pids():
        assert psutil.Process(pid).environ()[PROVIDER] == key
    workspace = tmp_path / "ws"
    workspace.mkdir()
    # A command task whose program sleeps, so its environment can be read.
    command_marker = f"{uuid.uuid4().int % 10**6 + 7000}.75"
    command = await client.create(
        ["sh", "-c", f'echo "key=${PROVIDER}"; env; sleep {command_marker}']
    )
    # An agent task whose bash call sleeps likewise. The model (hostile or confused) also
    # repeats the key in its text and in the call's input: redaction must catch it there.
    agent_marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    api.script(
        reply(
            text_block(f"I will print {key} now."),
            tool_use(
                "bash",
                {"command": f'echo "got=${PROVIDER}"; echo {key}; env; sleep {agent_marker}'},
                "toolu_env",
            ),
        ),
        reply(f"Done; the key was {key}."),
    )
    agent = await create_agent(client, "show the environment", workspace)
    tools: list[psutil.Process] = []
    for marker in (command_marker, agent_marker):
        found = await wait_until(lambda m=marker: processes_with("sleep", m), 30, "a tool")  # type: ignore[misc]
        tools.append(found[0])
    runners = set(daemon.runner_pids())
    for tool in tools:
        # The tool and its ancestry inside the task (sh, bash), up to its runner.
        proc: psutil.Process | None = tool
        while proc is not None and proc.pid not in runners:
            assert PROVIDER not in proc.environ(), proc.cmdline()
            assert needle not in Path(f"/proc/{proc.pid}/environ").read_bytes(), proc.pid
            proc = proc.parent()
        assert proc is not None, "the tool does not descend from a runner"
        assert proc.environ()[PROVIDER] == key
    # No command line of ours carries it: the daemon, runners, tools.
    for proc in tree_pids(daemon.process.pid):
        assert key not in " ".join(proc.cmdline()), proc.pid
    for tool in tools:
        tool.kill()
    command_events = await asyncio.wait_for(client.events(command.id), 60)
    agent_events = await asyncio.wait_for(client.events(agent.id), 60)
    assert command_events[-1].finished.state == task_pb2.TASK_STATE_FAILED
    assert agent_events[-1].finished.state == task_pb2.TASK_STATE_SUCCEEDED, agent_events[-1]
    # The programs ran without it: what they printed has no value for the variable.
    assert b"key=\n" in output_of(command_events)
    assert api.message_requests[0].api_key == key  # the model API is where it goes
    bash_result = next(e.tool_result for e in agent_events if e.HasField("tool_result"))
    assert "got=\n" in bash_result.output, bash_result.output
    # Events (per task and the bus from the start), audit records, task rows.
    assert key not in str(command_events) and key not in str(agent_events)
    assert "[REDACTED]" in str(agent_events)  # the model's echo was caught, not dropped
    bus = await subscribe_all(client)
    assert {command.id, agent.id} <= {e.task_id for e in bus}
    assert key not in str(bus)
    audit = await client.tasks.ListAudit(
        task_service_pb2.ListAuditRequest(page_size=1000), metadata=client.md
    )
    assert audit.records and key not in str(audit)
    for task_id in (command.id, agent.id):
        assert key not in str(await client.get(task_id))
    # The CLI's JSON and tables.
    for args in (
        ("task", "list", "--json"),
        ("task", "get", command.id, "--json"),
        ("task", "get", agent.id, "--json"),
        ("task", "watch", agent.id, "--json"),
        ("audit", "--json"),
        ("task", "list"),
    ):
        result = stigmer(daemon.home, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert key not in result.stdout and key not in result.stderr, args
    # Every file under STIGMER_HOME while the daemon runs (the db, its WAL, all logs)...
    assert files_with(daemon.home, needle) == []
    assert daemon.paths.database.exists()
    # ...and after it stopped (the WAL checkpointed into the db).
    assert daemon.stop() == 0
    assert files_with(daemon.home, needle) == []
    assert key not in daemon.log_text()
    assert env_for(daemon.home).get(PROVIDER) is None  # the test's env never had it
