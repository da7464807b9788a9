"""Property-based fuzzing of every RPC against one real daemon.

Hypothesis sends malformed, oversized and boundary requests to every method of every
service (DaemonService.Shutdown excepted: it would end the fixture): typed requests
built from the .proto descriptors (random and hostile text, NUL, huge strings,
negative/huge/NaN/inf numbers, unknown enum values, oversized repeated and map
fields, empty messages, wrong or missing tokens), and raw bytes that may not even be
protobuf. The property: each call answers within its deadline with OK or a status
the API documents, never INTERNAL, UNKNOWN or DEADLINE_EXCEEDED, and the daemon
keeps running and answering.

The defects the fuzzer found (corrupt bodies answered UNKNOWN, page tokens and cursors
past int64 answered INTERNAL, errors quoting long fields past gRPC's trailer limit) are
fixed; the tests at the end keep their exact inputs.

One daemon serves the whole module (1 runner, no TCP, no provider key, agents
pointed at a closed port); every command a fuzzed task runs is under a folder that
does not exist. About 2,000 inputs, well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import psutil
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import (
    daemon_service_pb2,
    event_pb2,
    event_service_pb2,
    runner_service_pb2,
    secret_service_pb2,
    skill_service_pb2,
    task_pb2,
    task_service_pb2,
    worker_service_pb2,
)
from shared import auth
from tests.support import Client, Daemon, wait_until, write_config

T = TypeVar("T")
# Descriptors: the pure-Python and upb classes differ, and their stubs allow None
# everywhere a .proto never has it.
Descriptor = Any
Field = Any
# The end of a stream (grpc-stubs does not declare it).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]

SERVICE_MODULES = (
    task_service_pb2,
    event_service_pb2,
    runner_service_pb2,
    secret_service_pb2,
    skill_service_pb2,
    daemon_service_pb2,
    worker_service_pb2,
)
# Would stop the daemon under test; its own tests cover it.
NEVER_CALLED = frozenset({"/stigmer.local.v1.DaemonService/Shutdown"})

# Statuses the API documents (the .proto comments, and the interceptor's own:
# UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED for an unknown method, and gRPC's
# RESOURCE_EXHAUSTED for a message over 4 MiB).
C = grpc.StatusCode
DOCUMENTED = frozenset(
    {
        C.OK,
        C.INVALID_ARGUMENT,
        C.NOT_FOUND,
        C.ALREADY_EXISTS,
        C.FAILED_PRECONDITION,
        C.OUT_OF_RANGE,
        C.ABORTED,
        C.PERMISSION_DENIED,
        C.UNAUTHENTICATED,
        C.RESOURCE_EXHAUSTED,
        C.UNIMPLEMENTED,
    }
)

ACTIVE = [task_pb2.TASK_STATE_CLAIMED, task_pb2.TASK_STATE_RUNNING]
TERMINAL = frozenset(
    {
        task_pb2.TASK_STATE_SUCCEEDED,
        task_pb2.TASK_STATE_FAILED,
        task_pb2.TASK_STATE_CANCELLED,
        task_pb2.TASK_STATE_TIMED_OUT,
    }
)
DEADLINE = 5.0  # seconds per call; the daemon's long polls are capped at 1 s here
STREAM_MESSAGES = 3  # a stream is read this far, then cancelled
STREAM_WAIT = 0.25  # a quiet live stream is fine: a watcher would just wait on
EXAMPLES = 40  # per RPC, typed and raw each
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

# Runner programs must never run anything real: every command task gets this prefix.
NOWHERE = "/nonexistent-stigmer-fuzz/"

# How many inputs were sent, by RPC path.
TRIED: Counter[str] = Counter()
RAW_TRIED: Counter[str] = Counter()
# What came back, by RPC and status (typed requests).
ANSWERS: Counter[tuple[str, str]] = Counter()
# Raw bodies that hit the known DecodeError -> UNKNOWN defect (see below).


# --- the RPCs ------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    service: str
    name: str
    request: type[Message]
    response: type[Message]
    streaming: bool

    @property
    def path(self) -> str:
        return f"/stigmer.local.v1.{self.service}/{self.name}"

    @property
    def worker(self) -> bool:
        return self.service == "WorkerService"

    def __str__(self) -> str:
        return f"{self.service}.{self.name}"


def _all_rpcs() -> list[Rpc]:
    found = []
    for module in SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert not method.client_streaming, method.full_name
                rpc = Rpc(
                    service.name,
                    method.name,
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                    method.server_streaming,
                )
                if rpc.path not in NEVER_CALLED:
                    found.append(rpc)
    # Runner control and secrets (which restart runners) last, so the worker fuzz
    # runs with a registered runner and its token.
    late = {"SecretService": 1, "RunnerService": 2}
    return sorted(found, key=lambda r: late.get(r.service, 0))


RPCS = _all_rpcs()


# --- the daemon ------------------------------------------------------------------


@dataclass
class Target:
    """The daemon under fuzz, its channel, and what the strategies aim at."""

    daemon: Daemon
    client: Client
    loop: asyncio.AbstractEventLoop
    task_ids: list[str] = field(default_factory=list)
    # A `sleep` the real runner is busy with, and a task the fuzz holds in its name.
    busy: str = ""
    held: tuple[str, int] = ("", 0)
    builder: Builder | None = None
    _calls: dict[str, Any] = field(default_factory=dict)
    _tokens: dict[int, tuple[str, str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Target(daemon pid {self.daemon.process and self.daemon.process.pid})"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def alive(self) -> bool:
        process = self.daemon.process
        return process is not None and process.poll() is None

    def runner(self) -> tuple[str, str] | None:
        """(runner id, token) of a live runner, read from its environment."""
        for pid in self.daemon.runner_pids():
            if pid not in self._tokens:
                try:
                    environ = psutil.Process(pid).environ()
                except psutil.Error:
                    continue
                token = environ.get("STIGMER_RUNNER_TOKEN")
                if not token:
                    continue
                self._tokens[pid] = (environ.get("STIGMER_RUNNER_ID", "runner-0"), token)
            return self._tokens[pid]
        return None

    def metadata(self, rpc: Rpc, who: str) -> tuple[tuple[str, str], ...]:
        runner = self.runner()
        runner_token = runner[1] if runner else "no-runner-token"
        right, other = self.client.token, runner_token
        if rpc.worker:
            right, other = other, right
        if who == "right":
            return auth.bearer(right)
        if who == "other":
            return auth.bearer(other)
        if who == "wrong":
            return auth.bearer("0" * len(self.client.token))
        if who == "garbled":
            return (("authorization", "Basic " + right),)
        return ()

    def multicallable(self, rpc: Rpc, raw: bool) -> Any:
        key = f"{rpc.path} {raw}"
        if key not in self._calls:
            serialize: Callable[[Any], bytes] = (
                (lambda b: b) if raw else (lambda m: m.SerializeToString())
            )
            make = (
                self.client.channel.unary_stream
                if rpc.streaming
                else (self.client.channel.unary_unary)
            )
            self._calls[key] = make(
                rpc.path,
                request_serializer=serialize,
                response_deserializer=rpc.response.FromString,
            )
        return self._calls[key]

    async def call(self, rpc: Rpc, request: Any, who: str, raw: bool = False) -> tuple[C, str]:
        """Sends one request; the status and details it got (OK for a stream still live)."""
        call = self.multicallable(rpc, raw)(
            request, metadata=self.metadata(rpc, who), timeout=DEADLINE
        )
        try:
            if not rpc.streaming:
                await call
                return C.OK, ""
            for _ in range(STREAM_MESSAGES):
                try:
                    message = await asyncio.wait_for(call.read(), STREAM_WAIT)
                except TimeoutError:
                    call.cancel()
                    return C.OK, "live"
                if message is EOF:
                    break
            if not call.done():
                call.cancel()
                return C.OK, "live"
            return await call.code(), await call.details()
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""

    async def ensure_runners(self) -> None:
        """One registered runner, as the fixture began, busy with nothing, and no task
        left held in its name by the fuzz (a drain would wait for it)."""
        md = self.client.md
        if self.busy:
            await self.client.tasks.CancelTask(
                task_service_pb2.CancelTaskRequest(task_id=self.busy), metadata=md
            )
            await wait_until(lambda: self._ended(self.busy), 20, "the busy task to end")
            self.busy = ""
        status = await self.client.status()
        if status.runners_total != 1:
            await self.client.runners.ScaleRunners(
                runner_service_pb2.ScaleRunnersRequest(count=1), metadata=md, timeout=30
            )
        await self.client.runners.StartRunner(
            runner_service_pb2.RunnerRequest(all=True), metadata=md, timeout=30
        )

        async def settled() -> bool:
            status = await self.client.status()
            return status.runners_total == status.runners_running == 1

        await wait_until(settled, 30, "one registered runner")
        await self._release_held()

    async def _ended(self, task_id: str) -> bool:
        return (await self.client.get(task_id)).state in TERMINAL

    async def _release_held(self) -> None:
        runner = self.runner()
        if runner is None:
            return
        listed = await self.client.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(states=ACTIVE, page_size=1000),
            metadata=self.client.md,
        )
        for task in listed.tasks:
            if task.runner_id != runner[0]:
                continue
            # The tasks the real runner runs end within moments (no program exists).
            await asyncio.sleep(0.5)
            if await self._ended(task.id):
                continue
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self.client.worker.CompleteTask(
                    worker_service_pb2.CompleteTaskRequest(
                        runner_id=runner[0],
                        task_id=task.id,
                        attempt=task.attempt,
                        state=task_pb2.TASK_STATE_FAILED,
                        result=task_pb2.TaskResult(error="claimed by the fuzzer"),
                    ),
                    metadata=auth.bearer(runner[1]),
                )
        self.held = ("", 0)

    async def hold(self) -> None:
        """For the worker fuzz: a task held in the runner's name (claimed by the fuzz
        with the runner's token) while the real runner is busy with a `sleep`, so
        that PublishEvents, Heartbeat, CompleteTask and RequestApproval reach past
        the holder check. Cheap when one is still held."""
        task_id, _ = self.held
        if task_id and not await self._ended(task_id):
            return
        if not self.busy or await self._ended(self.busy):
            await self.ensure_runners()
            busy = await self.client.create(["sleep", "3600"])
            self.busy = busy.id

            async def running() -> bool:
                task = await self.client.get(busy.id)
                return task.state == task_pb2.TASK_STATE_RUNNING

            await wait_until(running, 20, "the runner to be busy")
        runner = self.runner()
        assert runner is not None
        await self.client.create([NOWHERE + "held"])
        claimed = await self.client.worker.ClaimTask(
            worker_service_pb2.ClaimTaskRequest(runner_id=runner[0], wait_seconds=0.5),
            metadata=auth.bearer(runner[1]),
        )
        assert claimed.task.id, "the fuzz could not claim a task in the runner's name"
        self.held = (claimed.task.id, claimed.attempt)


CONFIG = """\
[daemon]
tcp_address = ""
[runners]
count = 1
# ClaimTask and Heartbeat hold a call at most a third of this: 1 s, inside DEADLINE.
heartbeat_timeout_seconds = 3
[secrets]
required = []
[agent]
# Agent tasks must stay offline whatever key the fuzz stores: a closed local port.
base_url = "http://127.0.0.1:9"
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    home.mkdir()
    write_config(home, CONFIG)
    daemon = Daemon(home)
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(daemon.start(runners=1))
        fuzz = Target(daemon, client, loop)
        loop.run_until_complete(_seed(fuzz))
        yield fuzz
    finally:
        for channel in daemon.channels:
            loop.run_until_complete(channel.close(None))
        daemon.stop()
        daemon.kill()
        loop.close()


async def _seed(fuzz: Target) -> None:
    """Tasks for the fuzz to aim its ids at: one failed, one queued waiting for a
    secret that never comes, one agent task (it fails: no provider key)."""
    client = fuzz.client
    failed = await client.create([NOWHERE + "prog"])
    waiting = await client.create([NOWHERE + "prog"], secrets=["FUZZ_NEVER_SET"])
    agent = await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(
            spec=task_pb2.TaskSpec(agent=task_pb2.AgentSpec(prompt="say hello"))
        ),
        metadata=client.md,
    )
    fuzz.task_ids += [failed.id, waiting.id, agent.id]
    await client.events(failed.id)


@pytest.fixture
def fresh(target: Target, request: pytest.FixtureRequest) -> Target:
    """Once per RPC (not per example): the runner the fixture began with is back;
    for WorkerService, busy, with a task held in its name."""
    rpc = getattr(request.node, "callspec", None) and request.node.callspec.params.get("rpc")
    if isinstance(rpc, Rpc) and rpc.worker:
        target.run(target.hold())
    else:
        target.run(target.ensure_runners())
    target.builder = Builder(_hints(target), _baselines(target), target.held)
    return target


# --- strategies -----------------------------------------------------------------

# Protobuf strings are UTF-8: a lone surrogate cannot even be sent.
CHARS = st.characters(exclude_categories=["Cs"])
BOUNDARY_TEXT = (
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\x7f\x01\x1b[31m",
    ".",
    "..",
    "/",
    "../../../etc/passwd",
    "~",
    "%s%n%x",
    "' OR 1=1 --",
    "${HOME}",
    "$(id)",
    "\u202e",
    "\ufeff",
    "\U0001f600",
    "é" * 100,
    "x" * 129,
    "x" * 257,
    "x" * 4097,
    "0",
    "-1",
)
# Digits that str.isdigit() accepts and int() may not, and numbers past SQLite's int64.
NUMERIC_TEXT = (
    "1",
    "0",
    "-1",
    "+1",
    " 1",
    "1.5",
    "0x10",
    "²",
    "١٢",
    "9" * 19,
    "9" * 20,
    "9" * 5000,
)
HUGE = (70_000, 300_000, 1_100_000, 4_300_000)  # the last is over gRPC's 4 MiB limit
INT_EDGES = (
    -(2**63),
    -(2**31),
    -1,
    0,
    1,
    2,
    3,
    63,
    64,
    65,
    100,
    1000,
    1001,
    10_000,
    10_001,
    86400,
    86401,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
)
FLOAT_EDGES = (
    math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    5e-324,
    1e-9,
    0.5,
    1.0,
    -1.0,
    86400.0,
    86400.000001,
    1e308,
    -1e308,
)
PAYLOADS = tuple(f.name for f in event_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields)
RUNNER_IDS = ("runner-0", "runner-1", "runner-63", "runner-64", "runner--1", "runner-x", "RUNNER-0")
NAMES = (
    "GITHUB_TOKEN",
    "FUZZ_SECRET",
    "A",
    "_",
    "1ABC",
    "lower",
    "STIGMER_RUNNER_TOKEN",
    "python-style",
    "debugging",
    "no-such-skill",
    "Bad Name",
    "../python-style",
)
RULES = ("bash(git status:*)", "bash(ls", "read_file", "()", "bash(rm -rf:*)", "x" * 5000)
PATHS = ("/", "/tmp", "/does/not/exist", "relative", ".", "..", "/proc/self")


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(st.text(CHARS, max_size=max_size), st.sampled_from(BOUNDARY_TEXT))


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in INT_EDGES if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def doubles() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(FLOAT_EDGES), st.floats())


# Strings some fields get, besides random text: real ids and their near misses.
def _hints(target: Target) -> dict[str, tuple[str, ...]]:
    runner = target.runner()
    # The real ones weigh more: a wrong runner id stops a worker call at the door.
    runners = (runner[0],) * 8 if runner else ()
    held = (target.held[0],) * 3 if target.held[0] else ()
    return {
        "task_id": (*held, *target.task_ids, "t-000000000000", "t-" + "f" * 12, "t-"),
        "runner_id": runners + RUNNER_IDS,
        "event_types": PAYLOADS,
        "page_token": NUMERIC_TEXT,
        "name": NAMES,
        "secrets": NAMES,
        "skills": NAMES,
        "path": PATHS,
        "cwd": PATHS,
        "model": ("claude-sonnet-5-5", "", "a" * 129, "a b", "-x"),
        "allow_rules": RULES,
        "ask_rules": RULES,
        "deny_rules": RULES,
        "allowed_write_globs": ("src/**", "/abs/**", "", "../**"),
        "allowed_read_globs": ("src/**", "/abs/**", "", "../**"),
    }


@dataclass
class Builder:
    """Strategies for any message, from its descriptor."""

    hints: dict[str, tuple[str, ...]]
    baselines: dict[str, list[Message]]
    held: tuple[str, int] = ("", 0)  # the task the baselines aim at (WorkerService)
    _cache: dict[str, st.SearchStrategy[Message]] = field(default_factory=dict)

    def string(self, name: str) -> st.SearchStrategy[str]:
        hinted = self.hints.get(name.removesuffix("s")) or self.hints.get(name)
        if hinted:
            return st.one_of(st.sampled_from(hinted), text())
        return text()

    def scalar(self, f: Field, depth: int) -> st.SearchStrategy[Any]:
        t = FieldDescriptor
        if f.type == t.TYPE_STRING:
            return self.string(f.name)
        if f.type == t.TYPE_BYTES:
            return st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\x00", b"\xff" * 9]))
        if f.type == t.TYPE_BOOL:
            return st.booleans()
        if f.type in (t.TYPE_DOUBLE, t.TYPE_FLOAT):
            return doubles() if f.type == t.TYPE_DOUBLE else st.floats(width=32)
        if f.type in (t.TYPE_INT32, t.TYPE_SINT32, t.TYPE_SFIXED32):
            return ints(-(2**31), 2**31 - 1)
        if f.type in (t.TYPE_UINT32, t.TYPE_FIXED32):
            return ints(0, 2**32 - 1)
        if f.type in (t.TYPE_INT64, t.TYPE_SINT64, t.TYPE_SFIXED64):
            return ints(-(2**63), 2**63 - 1)
        if f.type in (t.TYPE_UINT64, t.TYPE_FIXED64):
            return ints(0, 2**64 - 1)
        if f.type == t.TYPE_ENUM:
            known = [v.number for v in f.enum_type.values]
            return st.one_of(st.sampled_from(known), ints(-(2**31), 2**31 - 1))
        assert f.type == t.TYPE_MESSAGE, f.full_name
        return self.message(f.message_type, depth + 1)

    def value(self, f: Field, depth: int) -> st.SearchStrategy[Any]:
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            key, value = (
                f.message_type.fields_by_name["key"],
                f.message_type.fields_by_name["value"],
            )
            return st.dictionaries(self.scalar(key, depth), self.scalar(value, depth), max_size=4)
        if f.is_repeated:
            return st.lists(self.scalar(f, depth), max_size=4)
        return self.scalar(f, depth)

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        key = f"{descriptor.full_name}@{depth}"
        if key not in self._cache:
            cls = message_factory.GetMessageClass(descriptor)
            if depth > 4:
                self._cache[key] = st.just(cls())
            else:
                fields = {f.name: self.value(f, depth) for f in descriptor.fields}
                self._cache[key] = st.fixed_dictionaries({}, optional=fields).map(
                    functools.partial(_build, cls)
                )
        return self._cache[key]


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    _build_into(message, values)
    return message


def _field(message: Message, name: str) -> Field:
    return message.DESCRIPTOR.fields_by_name[name]


def _is_map(f: Field) -> bool:
    return bool(f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry)


def _build_into(message: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        f = _field(message, name)
        slot = getattr(message, name)
        if _is_map(f):
            slot.update(value)
        elif f.is_repeated:
            slot.extend(value)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            slot.CopyFrom(value)
        else:
            setattr(message, name, value)


def _inflate(message: Message, path: list[str], size: int) -> None:
    """Makes the field at `path` huge: a long string, or a long list."""
    for name in path[:-1]:
        message = getattr(message, name)
    f = _field(message, path[-1])
    slot = getattr(message, f.name)
    if _is_map(f):
        if f.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_STRING:
            slot.update({f"K{i}": "v" for i in range(min(size // 10, 50_000))})
    elif f.is_repeated:
        count = min(size // 10, 100_000)
        if f.type == FieldDescriptor.TYPE_STRING:
            slot.extend(["x"] * count)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            slot.extend([message_factory.GetMessageClass(f.message_type)()] * min(count, 20_000))
        elif f.type == FieldDescriptor.TYPE_ENUM:
            slot.extend([1] * count)
    elif f.type == FieldDescriptor.TYPE_STRING:
        setattr(message, f.name, "é" * (size // 2))
    elif f.type == FieldDescriptor.TYPE_BYTES:
        setattr(message, f.name, b"\xff" * size)


def _inflatable(
    descriptor: Descriptor, prefix: tuple[str, ...] = (), depth: int = 0
) -> list[list[str]]:
    paths: list[list[str]] = []
    for f in descriptor.fields:
        here = [*prefix, f.name]
        nested = (
            f.type == FieldDescriptor.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry
        )
        if f.is_repeated or f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            paths.append(here)
        elif nested and depth < 3 and f.message_type.full_name != "google.protobuf.Timestamp":
            paths.extend(_inflatable(f.message_type, tuple(here), depth + 1))
    return paths


# --- keeping the fuzz harmless ------------------------------------------------------


def _harmless(rpc: Rpc, message: Message) -> Message:
    """What the daemon would actually do with the request is made safe and quick,
    without changing what is being validated."""
    if rpc.name == "CreateTask":
        assert isinstance(message, task_service_pb2.CreateTaskRequest)
        argv = message.spec.command.argv
        # An empty or NUL-holding program name is refused before anything runs.
        if argv and argv[0] and "\x00" not in argv[0]:
            argv[0] = NOWHERE + argv[0].lstrip("/")
        git = message.spec.workspace.git
        if git.url.strip() and "\x00" not in git.url:
            git.url = "file://" + NOWHERE + git.url.lstrip("/")
    elif rpc.name == "ScaleRunners":
        assert isinstance(message, runner_service_pb2.ScaleRunnersRequest)
        # 64 real runners on a small machine is a load test, not bad input.
        if 3 < message.count <= 64:
            message.count %= 4
    elif rpc.name == "RequestApproval":
        assert isinstance(message, worker_service_pb2.RequestApprovalRequest)
        # Nobody answers in a fuzz: a valid wait would be waited out.
        if 1 < message.timeout_seconds <= 86400:
            message.timeout_seconds = 0.5
    elif rpc.name == "SetSecret":
        assert isinstance(message, secret_service_pb2.SetSecretRequest)
        if message.name.startswith("ANTHROPIC_"):
            message.name = "FUZZ_" + message.name
    return message


# An answer a client cannot read: trailers past gRPC's 16 KiB metadata limit.
TRAILERS_TOO_BIG = "metadata size exceeds hard limit"
INT64_MAX = 2**63 - 1


# --- requests: a valid baseline with fields replaced, or wholly random -------------------


# Mostly the right token: a refused token stops a request before anything else.
WHO = st.sampled_from(("right",) * 16 + ("other", "wrong", "garbled", "none"))


def _builder(fuzz: Target, rpc: Rpc) -> Builder:
    """The strategies' builder; for WorkerService, a held task for each example (an
    earlier one may have completed it), aimed at by the baselines."""
    if rpc.worker:
        fuzz.run(fuzz.hold())
        if fuzz.builder is None or fuzz.builder.held != fuzz.held:
            fuzz.builder = Builder(_hints(fuzz), _baselines(fuzz), fuzz.held)
    assert fuzz.builder is not None
    return fuzz.builder


def _describe(message: Message | bytes) -> str:
    shown = repr(message)
    return shown if len(shown) < 1500 else shown[:1500] + f"... ({len(shown)} characters)"


@dataclass(frozen=True)
class Shown:
    """A drawn request, with a repr short enough for a failure report."""

    message: Any  # a request, or raw bytes

    def __repr__(self) -> str:
        return _describe(self.message)


def _baselines(target: Target) -> dict[str, list[Message]]:
    """A valid request per RPC (two for CreateTask), aimed at real ids: the fuzz
    mutates a field or two of one, to reach the checks past the first."""
    task = target.task_ids[0]
    runner = target.runner()
    me = runner[0] if runner else "runner-0"
    held, attempt = target.held
    ours = {"runner_id": me, "task_id": held or task, "attempt": attempt or 1}
    plain: dict[str, list[dict[str, Any]]] = {
        "CreateTask": [
            {"spec": {"command": {"argv": [NOWHERE + "prog"]}}, "request_id": "fuzz"},
            {"spec": {"agent": {"prompt": "say hello"}, "workspace": {"path": "/tmp"}}},
        ],
        "GetTask": [{"task_id": task}],
        "CancelTask": [{"task_id": task, "reason": "fuzz"}],
        "WatchTask": [{"task_id": task}],
        "ApproveAction": [{"task_id": task, "approval_id": "a-1", "approve": True}],
        "ListAudit": [{"task_id": task, "page_size": 10}],
        "ListTasks": [{"page_size": 10}],
        "Subscribe": [{"from_start": True}],
        "StartRunner": [{"runner_id": me}],
        "StopRunner": [{"runner_id": me}],
        "RestartRunner": [{"runner_id": me}],
        "ScaleRunners": [{"count": 1}],
        "TailRunnerLog": [{"runner_id": me}],
        "SetSecret": [{"name": "FUZZ_SECRET", "value": "fuzz-value-1"}],
        "DeleteSecret": [{"name": "FUZZ_SECRET"}],
        "GetSkill": [{"name": "python-style"}],
        "Register": [{"runner_id": me, "pid": 1}],
        "ClaimTask": [{"runner_id": me}],
        "Heartbeat": [{**ours, "wait_seconds": 0.1}],
        "PublishEvents": [
            {**ours, "first_index": 1, "events": [{"log": {"stream": 1, "data": "eA=="}}]}
        ],
        "CompleteTask": [{**ours, "state": "TASK_STATE_FAILED", "result": {"error": "x"}}],
        "RequestApproval": [
            {**ours, "call_id": "c1", "tool": "bash", "summary": "ls", "timeout_seconds": 0.5}
        ],
    }
    out: dict[str, list[Message]] = {}
    for rpc in RPCS:
        out[rpc.path] = [json_format.ParseDict(d, rpc.request()) for d in plain.get(rpc.name, [{}])]
    return out


def _leaves(
    descriptor: Descriptor, prefix: tuple[str, ...] = (), depth: int = 0
) -> list[tuple[tuple[str, ...], Field]]:
    """Every field a mutation may replace: scalars, lists and maps whole, and each
    singular message both whole and field by field."""
    found = []
    for f in descriptor.fields:
        here = (*prefix, f.name)
        found.append((here, f))
        singular = f.type == FieldDescriptor.TYPE_MESSAGE and not f.is_repeated
        if singular and depth < 3:
            found.extend(_leaves(f.message_type, here, depth + 1))
    return found


def _put(message: Message, path: tuple[str, ...], value: Any) -> None:
    for name in path[:-1]:
        message = getattr(message, name)
    message.ClearField(path[-1])
    _build_into(message, {path[-1]: value})


@st.composite
def requests(draw: st.DrawFn, rpc: Rpc, builder: Builder) -> Shown:
    """A baseline with one to three fields replaced (mostly), or a wholly random request."""
    bases = builder.baselines.get(rpc.path, [])
    if bases and draw(st.integers(0, 3)) > 0:
        message = rpc.request()
        message.CopyFrom(draw(st.sampled_from(bases)))
        leaves = _leaves(rpc.request.DESCRIPTOR)
        if rpc.worker:
            # Another runner's id is refused before anything else: the wholly random
            # requests try that; the mutations aim past it.
            leaves = [leaf for leaf in leaves if leaf[0] != ("runner_id",)]
        if leaves:
            for _ in range(draw(st.integers(1, 3))):
                path, f = draw(st.sampled_from(leaves))
                _put(message, path, draw(builder.value(f, len(path) - 1)))
    else:
        message = draw(builder.message(rpc.request.DESCRIPTOR))
    paths = _inflatable(rpc.request.DESCRIPTOR)
    if paths and draw(st.integers(0, 9)) == 0:
        _inflate(message, draw(st.sampled_from(paths)), draw(st.sampled_from(HUGE)))
    return Shown(_harmless(rpc, message))


# --- the property --------------------------------------------------------------------


def _check(fuzz: Target, rpc: Rpc, code: C, details: str, sent: str) -> None:
    assert fuzz.alive(), f"the daemon died after {rpc} with {sent}:\n{fuzz.daemon.log_text()}"
    assert code != C.DEADLINE_EXCEEDED, f"{rpc} hung (no answer in {DEADLINE} s) for {sent}"
    assert TRAILERS_TOO_BIG not in details, f"{rpc}: an unreadable error for {sent}"
    assert code in DOCUMENTED, f"{rpc} answered {code.name}: {details!r} for {sent}"


# --- the typed fuzz ------------------------------------------------------------------


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@SETTINGS
@given(data=st.data())
def test_typed_requests_get_documented_statuses(
    fresh: Target, rpc: Rpc, data: st.DataObject
) -> None:
    builder = _builder(fresh, rpc)
    message = data.draw(requests(rpc, builder), label="request").message
    who = data.draw(WHO, label="token")
    TRIED[rpc.path] += 1
    code, details = fresh.run(fresh.call(rpc, message, who))
    ANSWERS[str(rpc), code.name] += 1
    _check(fresh, rpc, code, details, f"{_describe(message)} with the {who} token")


# --- raw bytes -----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _nested(depth: int) -> bytes:
    """Field 15 holding field 15 holding ... `depth` deep (length-delimited)."""
    body = b""
    for _ in range(depth):
        body = b"\x7a" + _varint(len(body)) + body
    return body


# Bodies no request type parses: the wire format itself is broken.
CORRUPT = (
    b"\xff",  # wire type 7 does not exist
    b"\x08",  # a varint cut short
    b"\x0a\x05ab",  # a length past the end
    b"\x08" + b"\xff" * 10 + b"\x01",  # a varint longer than 10 bytes
    b"\x0a\xff\xff\xff\xff\x0f",  # a 4 GiB length
    b"\x7b" * 200 + b"\x7c" * 200,  # groups nested past the parser's depth limit
    b"\x0b\x14",  # a group closed by another field's end tag
    b"\x00",  # field number 0
)
OTHER_RAW = (
    b"",
    b"\x0a\x02\xc3\x28",  # field 1, bad UTF-8 (a string field in most requests)
    _nested(120),
    b"\x08" + _varint(2**64 - 1),
    b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # field 2 as -1
    b"\x09" + b"\xff" * 8,  # field 1 as fixed64
)


@st.composite
def raw_bodies(draw: st.DrawFn, rpc: Rpc, builder: Builder) -> Shown:
    kind = draw(st.sampled_from(("random", "corrupt", "mutated", "mutated")))
    if kind == "random":
        return Shown(draw(st.binary(max_size=256)))
    if kind == "corrupt":
        return Shown(draw(st.sampled_from(CORRUPT + OTHER_RAW)))
    body = bytearray(draw(requests(rpc, builder)).message.SerializeToString())
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(("flip", "cut", "insert")))
        at = draw(st.integers(0, len(body)))
        if how == "flip" and at < len(body):
            body[at] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del body[at:]
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
    return Shown(bytes(body))


def _parses(rpc: Rpc, body: bytes) -> Message | None:
    try:
        return rpc.request.FromString(body)
    except DecodeError:
        return None


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@SETTINGS
@given(data=st.data())
def test_raw_bytes_get_documented_statuses(fresh: Target, rpc: Rpc, data: st.DataObject) -> None:
    builder = _builder(fresh, rpc)
    body: bytes = data.draw(raw_bodies(rpc, builder), label="body").message
    who = data.draw(WHO, label="token")
    parsed = _parses(rpc, body)
    if parsed is not None:
        # What parses is a request like any other: made as harmless, and as exempt.
        safe = _harmless(rpc, rpc.request.FromString(body))
        if safe != parsed:
            body = safe.SerializeToString()
    RAW_TRIED[rpc.path] += 1
    code, details = fresh.run(fresh.call(rpc, body, who, raw=True))
    _check(fresh, rpc, code, details, f"raw body {body[:300]!r} ({len(body)} bytes) as {who}")


# --- the end ---------------------------------------------------------------------------


def test_every_rpc_but_shutdown_is_fuzzed() -> None:
    names = {str(r) for r in RPCS}
    assert len(names) == 26 and "DaemonService.Shutdown" not in names, sorted(names)
    assert {"TaskService.ListAudit", "TaskService.ApproveAction", "TaskService.WatchTask"} <= names
    assert {"EventService.Subscribe", "RunnerService.TailRunnerLog"} <= names
    assert {f"WorkerService.{m}" for m in ("Register", "ClaimTask", "RequestApproval")} <= names


TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)*(?P<last>.*)$", re.M)


def test_the_daemon_survived_the_fuzz(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    """After the fuzz (before the pinned defects below make the daemon log their own
    tracebacks): alive, answering, back to its one runner, no traceback in its log but
    the known DecodeError one, and nothing answered INTERNAL; then the figures."""
    assert target.alive(), target.daemon.log_text()[-5000:]
    target.run(target.ensure_runners())
    status = target.run(target.client.status())
    assert status.runners_running == status.runners_total == 1
    log = target.daemon.log_text()
    unexpected = [
        m.group("last")
        for m in TRACEBACK.finditer(log)
        if not m.group("last").startswith("google.protobuf.message.DecodeError")
    ]
    assert not unexpected, unexpected
    assert "unexpected error" not in log
    typed, raw = sum(TRIED.values()), sum(RAW_TRIED.values())
    rpcs = len(set(TRIED) | set(RAW_TRIED))
    with capsys.disabled():
        print(
            f"\nfuzz: {typed + raw} inputs tried across {rpcs} RPCs"
            f" ({typed} typed requests, {raw} raw bodies)"
        )
        by_rpc: dict[str, list[str]] = {}
        for (name, code), count in sorted(ANSWERS.items()):
            by_rpc.setdefault(name, []).append(f"{code} {count}")
        for name, codes in by_rpc.items():
            print(f"  {name}: {', '.join(codes)}")


# --- defects found, pinned with the exact inputs ------------------------------------


def test_corrupt_protobuf_is_invalid_argument(fresh: Target) -> None:
    wrong: list[str] = []
    for rpc in RPCS:
        for body in CORRUPT:
            assert _parses(rpc, body) is None, (rpc, body)
            code, details = fresh.run(fresh.call(rpc, body, "right", raw=True))
            if code != C.INVALID_ARGUMENT:
                wrong.append(f"{rpc} {body[:12]!r}: {code.name} {details[:80]!r}")
    assert fresh.alive()
    assert not wrong, "\n".join(wrong)


@dataclass(frozen=True)
class Answer:
    call: str
    code: C
    details: str

    def __str__(self) -> str:
        return f"{self.call} -> {self.code.name} {self.details!r}"


def _answers(fuzz: Target, calls: list[tuple[str, Message]]) -> list[Answer]:
    by_name = {str(r): r for r in RPCS}
    out = []
    for name, message in calls:
        code, details = fuzz.run(fuzz.call(by_name[name], message, "right"))
        shown = " ".join(_describe(message).split())
        shown = shown if len(shown) < 70 else shown[:67] + "..."
        out.append(Answer(f"{name}({shown})", code, details[:120]))
    assert fuzz.alive()
    return out


def test_bad_page_tokens_are_invalid_argument(fresh: Target) -> None:
    calls: list[tuple[str, Message]] = []
    for token in ("²", "9" * 19, "9" * 20, "9" * 5000):
        calls.append(("TaskService.ListTasks", task_service_pb2.ListTasksRequest(page_token=token)))
        calls.append(("TaskService.ListAudit", task_service_pb2.ListAuditRequest(page_token=token)))
    wrong = [str(a) for a in _answers(fresh, calls) if a.code != C.INVALID_ARGUMENT]
    assert not wrong, "\n".join(wrong)


def test_cursors_past_int64_are_refused(fresh: Target) -> None:
    task = fresh.task_ids[0]
    calls: list[tuple[str, Message]] = []
    for big in (2**63, 2**64 - 1):
        calls.append(
            (
                "TaskService.WatchTask",
                task_service_pb2.WatchTaskRequest(task_id=task, after_seq=big),
            )
        )
        calls.append(
            ("EventService.Subscribe", event_service_pb2.SubscribeRequest(after_cursor=big))
        )
    wrong = [str(a) for a in _answers(fresh, calls) if a.code not in DOCUMENTED]
    assert not wrong, "\n".join(wrong)


LONG = "x" * 70_000


def test_errors_about_long_fields_stay_readable(fresh: Target) -> None:
    calls: list[tuple[str, Message]] = [
        ("TaskService.GetTask", task_service_pb2.GetTaskRequest(task_id=LONG)),
        ("TaskService.CancelTask", task_service_pb2.CancelTaskRequest(task_id=LONG)),
        ("TaskService.WatchTask", task_service_pb2.WatchTaskRequest(task_id=LONG)),
        ("TaskService.ListAudit", task_service_pb2.ListAuditRequest(task_id=LONG)),
        (
            "TaskService.ApproveAction",
            task_service_pb2.ApproveActionRequest(task_id=LONG, approval_id=LONG),
        ),
        ("SkillService.GetSkill", skill_service_pb2.GetSkillRequest(name=LONG)),
        ("WorkerService.Register", worker_service_pb2.RegisterRequest(runner_id=LONG)),
        ("RunnerService.StartRunner", runner_service_pb2.RunnerRequest(runner_id=LONG)),
        ("RunnerService.TailRunnerLog", runner_service_pb2.TailRunnerLogRequest(runner_id=LONG)),
        ("SecretService.DeleteSecret", secret_service_pb2.DeleteSecretRequest(name=LONG)),
        ("SecretService.SetSecret", secret_service_pb2.SetSecretRequest(name=LONG, value="v")),
        (
            "TaskService.CreateTask",
            task_service_pb2.CreateTaskRequest(
                spec=task_pb2.TaskSpec(command=task_pb2.CommandSpec(argv=[NOWHERE + LONG]))
            ),
        ),
    ]
    unreadable = [str(a) for a in _answers(fresh, calls) if TRAILERS_TOO_BIG in a.details]
    assert not unreadable, "\n".join(unreadable)
