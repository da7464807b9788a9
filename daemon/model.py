"""The daemon's core records: plain dataclasses, no protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TaskState(enum.Enum):
    QUEUED = "QUEUED"
    CLAIMED = "CLAIMED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        """Held by a runner."""
        return self in (TaskState.CLAIMED, TaskState.RUNNING)


TERMINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT}
)


@dataclass(frozen=True)
class CommandSpec:
    argv: tuple[str, ...]
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 0.0
    # Names only: values are looked up when the task is claimed.
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    command: CommandSpec
    # Empty: a fresh folder under the state dir, chosen at creation.
    workspace_path: str = ""
    max_attempts: int = 1
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskResult:
    exit_code: int | None = None
    error: str = ""
    summary: str = ""


@dataclass(frozen=True)
class Task:
    id: str
    request_id: str
    spec: TaskSpec
    state: TaskState
    attempt: int
    runner_id: str
    cancel_requested: bool
    create_time: float
    start_time: float | None
    end_time: float | None
    result: TaskResult | None
    last_seq: int
    workspace_path: str


@dataclass(frozen=True)
class NewEvent:
    """An event before the store numbers it. `payload` is the encoded payload
    message of kind `kind` (the wire format is the edge's business)."""

    kind: str
    payload: bytes
    time: float
    runner_id: str = ""


@dataclass(frozen=True)
class Event:
    cursor: int
    task_id: str
    seq: int
    attempt: int
    time: float
    runner_id: str
    kind: str
    payload: bytes
