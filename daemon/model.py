"""The daemon's core records: plain dataclasses, no protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from shared.secretstore import PROVIDER_KEY


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
class AgentLimits:
    max_turns: int = 0
    max_wall_seconds: float = 0.0
    max_tokens: int = 0
    max_cost_usd: float = 0.0


@dataclass(frozen=True)
class AgentConstraints:
    allowed_write_globs: tuple[str, ...] = ()
    allowed_read_globs: tuple[str, ...] = ()
    max_files_changed: int = 0
    max_diff_bytes: int = 0
    denylisted_commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentSpec:
    prompt: str
    model: str
    policy_level: str  # "student", "intern", "supervised" or "autonomous"
    limits: AgentLimits
    max_tokens: int
    approval_timeout_seconds: float
    skills: tuple[str, ...] = ()
    skill_domains: tuple[str, ...] = ()
    allow_rules: tuple[str, ...] = ()
    ask_rules: tuple[str, ...] = ()
    deny_rules: tuple[str, ...] = ()
    constraints: AgentConstraints = field(default_factory=AgentConstraints)
    skill_token_budget: int = 0


@dataclass(frozen=True)
class TaskSpec:
    # Exactly one of command and agent is set.
    command: CommandSpec | None = None
    agent: AgentSpec | None = None
    # Empty: a fresh folder under the state dir, chosen at creation.
    workspace_path: str = ""
    # A repository cloned into the fresh folder when the task is claimed.
    git_url: str = ""
    git_branch: str = ""
    max_attempts: int = 1
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Secrets the task's programs get in their environment."""
        return self.command.secrets if self.command is not None else ()

    @property
    def requires(self) -> tuple[str, ...]:
        """Secrets that must be set before the task can run: an agent needs the
        provider key (in its runner, never in its tools)."""
        if self.agent is not None:
            return (PROVIDER_KEY,)
        return self.secrets


@dataclass(frozen=True)
class TaskResult:
    exit_code: int | None = None
    error: str = ""
    summary: str = ""
    # Agent runs: what they used.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0


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


@dataclass(frozen=True)
class AuditRecord:
    task_id: str
    attempt: int
    call_id: str
    tool: str = ""
    input_json: str = ""
    decision: str = ""  # "allow", "ask" or "deny"
    rule: str = ""
    approved_by: str = ""
    exit_code: int | None = None
    is_error: bool = False
    duration_seconds: float = 0.0
    time: float = 0.0
