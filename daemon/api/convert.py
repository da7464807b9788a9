"""Protobuf <-> core dataclasses, with the checks a CreateTask must pass."""

from __future__ import annotations

import math
import os
import re

from google.protobuf.timestamp_pb2 import Timestamp

from daemon import eventcodec
from daemon.api import agent_spec
from daemon.config import Config
from daemon.errors import InvalidArgument
from daemon.model import AuditRecord, CommandSpec, Task, TaskResult, TaskSpec, TaskState
from protos import event_pb2, task_pb2, task_service_pb2
from shared.redact import Redactor, looks_like_key
from shared.secretstore import valid_name

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ARGV_BYTES = 256 * 1024
MAX_ATTEMPTS = 10
MAX_LABELS = 32
MAX_REQUEST_ID = 128


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def state_from_proto(value: int, field: str) -> TaskState:
    try:
        name = task_pb2.TaskState.Name(value)  # type: ignore[arg-type]
    except ValueError:
        name = ""
    if not name.startswith("TASK_STATE_") or name == "TASK_STATE_UNSPECIFIED":
        allowed = ", ".join(s.value for s in TaskState)
        raise InvalidArgument(field, value, f"use one of {allowed}")
    return TaskState(name.removeprefix("TASK_STATE_"))


def task_to_proto(task: Task) -> task_pb2.Task:
    command = task.spec.command
    spec = task_pb2.TaskSpec(
        retry=task_pb2.RetryPolicy(max_attempts=task.spec.max_attempts),
        labels=task.spec.labels,
    )
    if command is not None:
        spec.command.CopyFrom(
            task_pb2.CommandSpec(
                argv=command.argv,
                cwd=command.cwd,
                env=command.env,
                timeout_seconds=command.timeout_seconds,
                secrets=command.secrets,
            )
        )
    if task.spec.agent is not None:
        spec.agent.CopyFrom(agent_spec.to_proto(task.spec.agent))
    if task.spec.workspace_path:
        spec.workspace.path = task.spec.workspace_path
    if task.spec.git_url:
        spec.workspace.git.url = task.spec.git_url
        spec.workspace.git.branch = task.spec.git_branch
    message = task_pb2.Task(
        id=task.id,
        request_id=task.request_id,
        spec=spec,
        state=eventcodec.state_to_proto(task.state),
        attempt=task.attempt,
        runner_id=task.runner_id,
        cancel_requested=task.cancel_requested,
        create_time=_timestamp(task.create_time),
        start_time=_timestamp(task.start_time),
        end_time=_timestamp(task.end_time),
        last_seq=task.last_seq,
        workspace_path=task.workspace_path,
    )
    if task.result is not None:
        message.result.CopyFrom(eventcodec.result_to_proto(task.result))
    return message


def _check_text(field: str, value: str, limit: int) -> None:
    if "\x00" in value:
        raise InvalidArgument(field, value, "remove the NUL character")
    if len(value.encode()) > limit:
        raise InvalidArgument(field, value, f"keep it under {limit} bytes")


def _no_secret(field: str, value: str, redactor: Redactor) -> None:
    """Values never travel in a spec: it is stored, listed and shown."""
    if redactor.knows(value) or looks_like_key(value):
        raise InvalidArgument(
            field,
            redactor.text(value),
            "it holds a secret; store it with `stigmer secrets set NAME` and pass the name"
            " in spec.command.secrets (`stigmer run --secret NAME`)",
        )


def _command(
    message: task_pb2.CommandSpec, workspace: str, config: Config, redactor: Redactor
) -> CommandSpec:
    argv = tuple(message.argv)
    if not argv:
        raise InvalidArgument(
            "spec.command.argv", [], "give the program and its arguments, e.g. ['make', 'test']"
        )
    if not argv[0]:
        raise InvalidArgument("spec.command.argv[0]", "", "name the program to run")
    for i, arg in enumerate(argv):
        _check_text(f"spec.command.argv[{i}]", arg, MAX_ARGV_BYTES)
        _no_secret(f"spec.command.argv[{i}]", arg, redactor)
    if sum(len(a.encode()) for a in argv) > MAX_ARGV_BYTES:
        raise InvalidArgument(
            "spec.command.argv",
            f"{len(argv)} arguments",
            f"keep the arguments under {MAX_ARGV_BYTES} bytes in all; pass data in a file",
        )
    timeout = message.timeout_seconds
    if math.isnan(timeout) or timeout < 0 or timeout > config.max_timeout_seconds:
        raise InvalidArgument(
            "spec.command.timeout_seconds",
            timeout,
            f"use seconds from 0 (the default, {config.default_timeout_seconds:g} s)"
            f" to {config.max_timeout_seconds:g}",
        )
    cwd = message.cwd
    _check_text("spec.command.cwd", cwd, 4096)
    if cwd:
        if not os.path.isabs(cwd) and not workspace:
            raise InvalidArgument(
                "spec.command.cwd",
                cwd,
                "a fresh workspace starts empty: give an absolute cwd or a workspace.path",
            )
        full = os.path.join(workspace, cwd)
        if not os.path.isdir(full):
            raise InvalidArgument("spec.command.cwd", cwd, "use a directory that exists")
    env = dict(message.env)
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise InvalidArgument(
                "spec.command.env",
                name,
                "names are letters, digits and _, not starting with a digit",
            )
        if name.startswith("STIGMER_"):
            raise InvalidArgument("spec.command.env", name, "STIGMER_* names are reserved")
        _check_text(f"spec.command.env[{name}]", value, 64 * 1024)
        _no_secret(f"spec.command.env[{name}]", value, redactor)
    for name in message.secrets:
        if not valid_name(name):
            raise InvalidArgument(
                "spec.command.secrets",
                name,
                "use variable names such as GITHUB_TOKEN (A-Z, 0-9, _)",
            )
        if name in env:
            raise InvalidArgument(
                "spec.command.secrets", name, "it is also in spec.command.env; keep one of them"
            )
    return CommandSpec(
        argv=argv,
        cwd=cwd,
        env=env,
        timeout_seconds=timeout or config.default_timeout_seconds,
        secrets=tuple(dict.fromkeys(message.secrets)),
    )


def spec_from_proto(message: task_pb2.TaskSpec, config: Config, redactor: Redactor) -> TaskSpec:
    kind = message.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(
            "spec", "no kind", "set spec.command (a program to run) or spec.agent (a prompt)"
        )
    workspace = message.workspace.path
    _check_text("spec.workspace.path", workspace, 4096)
    git = message.workspace.git
    if message.workspace.HasField("git"):
        if workspace:
            raise InvalidArgument(
                "spec.workspace", "path and git", "give a path or a git repository, not both"
            )
        if not git.url.strip():
            raise InvalidArgument("spec.workspace.git.url", "", "give what `git clone` takes")
        _check_text("spec.workspace.git.url", git.url, 4096)
        _no_secret("spec.workspace.git.url", git.url, redactor)
        if git.branch.startswith("-") or "\x00" in git.branch:
            raise InvalidArgument("spec.workspace.git.branch", git.branch, "name a branch or tag")
    if workspace:
        if not os.path.isabs(workspace):
            raise InvalidArgument("spec.workspace.path", workspace, "give an absolute path")
        if not os.path.isdir(workspace):
            raise InvalidArgument("spec.workspace.path", workspace, "use a directory that exists")
    attempts = message.retry.max_attempts
    if attempts > MAX_ATTEMPTS:
        raise InvalidArgument("spec.retry.max_attempts", attempts, f"use 1 to {MAX_ATTEMPTS}")
    labels = dict(message.labels)
    if len(labels) > MAX_LABELS:
        raise InvalidArgument("spec.labels", f"{len(labels)} labels", f"use at most {MAX_LABELS}")
    for key, value in labels.items():
        if not key or len(key) > 63:
            raise InvalidArgument("spec.labels", key, "keys are 1 to 63 characters")
        _check_text(f"spec.labels[{key}]", value, 256)
        _no_secret(f"spec.labels[{key}]", value, redactor)
    return TaskSpec(
        command=_command(message.command, workspace, config, redactor)
        if kind == "command"
        else None,
        agent=agent_spec.from_proto(message.agent, config.agent, redactor)
        if kind == "agent"
        else None,
        workspace_path=workspace,
        git_url=git.url.strip(),
        git_branch=git.branch,
        max_attempts=attempts or config.default_max_attempts,
        labels=labels,
    )


def request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID or "\x00" in value:
        raise InvalidArgument("request_id", value, f"use at most {MAX_REQUEST_ID} characters")
    return value


def result_from_proto(message: task_pb2.TaskResult) -> TaskResult:
    return TaskResult(
        exit_code=message.exit_code if message.has_exit_code else None,
        error=message.error,
        summary=message.summary,
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        cost_usd=message.cost_usd,
        turns=message.turns,
    )


_DECISIONS = {
    "allow": event_pb2.DECISION_ALLOW,
    "ask": event_pb2.DECISION_ASK,
    "deny": event_pb2.DECISION_DENY,
}


def decision_name(value: int) -> str:
    for name, number in _DECISIONS.items():
        if number == value:
            return name
    return ""


def audit_to_proto(record: AuditRecord) -> task_service_pb2.AuditRecord:
    message = task_service_pb2.AuditRecord(
        task_id=record.task_id,
        attempt=record.attempt,
        call_id=record.call_id,
        tool=record.tool,
        input_json=record.input_json,
        decision=_DECISIONS.get(record.decision, event_pb2.DECISION_UNSPECIFIED),
        rule=record.rule,
        approved_by=record.approved_by,
        is_error=record.is_error,
        duration_seconds=record.duration_seconds,
        time=_timestamp(record.time),
    )
    if record.exit_code is not None:
        message.exit_code = record.exit_code
    return message
