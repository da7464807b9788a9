"""How tasks, runners, events and the daemon's status read in a terminal."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from cli.errors import UsageError
from protos import daemon_service_pb2, event_pb2, runner_pb2, task_pb2

_STATE_PREFIX = "TASK_STATE_"
_RUNNER_PREFIX = "RUNNER_STATE_"

_STATE_STYLES: dict[int, str] = {
    task_pb2.TASK_STATE_QUEUED: "cyan",
    task_pb2.TASK_STATE_CLAIMED: "cyan",
    task_pb2.TASK_STATE_RUNNING: "yellow",
    task_pb2.TASK_STATE_SUCCEEDED: "green",
    task_pb2.TASK_STATE_FAILED: "red",
    task_pb2.TASK_STATE_CANCELLED: "magenta",
    task_pb2.TASK_STATE_TIMED_OUT: "red",
}


def state_label(state: int) -> str:
    """`TASK_STATE_TIMED_OUT` → `timed_out`."""
    try:
        name = task_pb2.TaskState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return str(state)
    return name.removeprefix(_STATE_PREFIX).lower()


def state_style(state: int) -> str | None:
    return _STATE_STYLES.get(state)


def state_choices() -> list[str]:
    return [
        state_label(value)
        for value in task_pb2.TaskState.values()
        if value != task_pb2.TASK_STATE_UNSPECIFIED
    ]


def parse_state(text: str) -> task_pb2.TaskState.ValueType:
    """A state as users type it: `running`, `RUNNING`, `timed-out` or the proto name."""
    name = text.strip().upper().replace("-", "_")
    if not name.startswith(_STATE_PREFIX):
        name = _STATE_PREFIX + name
    try:
        value = task_pb2.TaskState.Value(name)
    except ValueError:
        value = task_pb2.TASK_STATE_UNSPECIFIED
    if value == task_pb2.TASK_STATE_UNSPECIFIED:
        raise UsageError(f"--state {text!r}: expected one of {', '.join(state_choices())}")
    return value


def runner_state_label(state: int) -> str:
    try:
        name = runner_pb2.RunnerState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return str(state)
    return name.removeprefix(_RUNNER_PREFIX).lower()


def duration(seconds: float) -> str:
    """`3s`, `4m12s`, `2h05m`, `3d04h`: short enough for a table column."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def since(ts: Timestamp, now: float | None = None) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    now = time.time() if now is None else now
    return duration(now - (ts.seconds + ts.nanos / 1e9))


def when(ts: Timestamp) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    local = ts.ToDatetime(tzinfo=UTC).astimezone()
    return local.isoformat(timespec="seconds")


def excerpt(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def task_kind(task: task_pb2.Task) -> str:
    return task.spec.WhichOneof("kind") or "-"


def task_what(task: task_pb2.Task) -> str:
    """The command line or the prompt, in full."""
    kind = task_kind(task)
    if kind == "command":
        return shlex.join(task.spec.command.argv)
    if kind == "agent":
        return task.spec.agent.prompt
    return ""


def task_row(task: task_pb2.Task, now: float) -> list[str]:
    return [
        task.id,
        state_label(task.state),
        task_kind(task),
        str(task.attempt) if task.attempt else "-",
        task.runner_id or "-",
        since(task.create_time, now),
        excerpt(task_what(task)),
    ]


TASK_COLUMNS = ["ID", "STATE", "KIND", "ATTEMPT", "RUNNER", "AGE", "COMMAND / PROMPT"]


def task_fields(task: task_pb2.Task) -> list[tuple[str, str]]:
    spec = task.spec
    state = state_label(task.state)
    if task.cancel_requested and not _terminal(task.state):
        state += " (cancel requested)"
    rows = [("id", task.id), ("state", state), ("kind", task_kind(task))]
    if spec.HasField("command"):
        cmd = spec.command
        rows.append(("command", shlex.join(cmd.argv)))
        if cmd.cwd:
            rows.append(("cwd", cmd.cwd))
        for key in sorted(cmd.env):
            rows.append(("env", f"{key}={cmd.env[key]}"))
        if cmd.timeout_seconds:
            rows.append(("timeout", duration(cmd.timeout_seconds)))
    elif spec.HasField("agent"):
        rows.append(("prompt", spec.agent.prompt))
        if spec.agent.model:
            rows.append(("model", spec.agent.model))
    workspace = task.workspace_path or spec.workspace.path or spec.workspace.git.url
    rows.append(("workspace", workspace or "(fresh folder)"))
    rows.append(("attempt", str(task.attempt) if task.attempt else "-"))
    rows.append(("runner", task.runner_id or "-"))
    rows.append(("created", when(task.create_time)))
    rows.append(("started", when(task.start_time)))
    rows.append(("ended", when(task.end_time)))
    if task.HasField("result"):
        result = task.result
        if result.has_exit_code:
            rows.append(("exit code", str(result.exit_code)))
        if result.error:
            rows.append(("error", result.error))
        if result.summary:
            rows.append(("summary", result.summary))
    for key in sorted(spec.labels):
        rows.append(("label", f"{key}={spec.labels[key]}"))
    rows.append(("last seq", str(task.last_seq)))
    return rows


def _terminal(state: int) -> bool:
    return state in (
        task_pb2.TASK_STATE_SUCCEEDED,
        task_pb2.TASK_STATE_FAILED,
        task_pb2.TASK_STATE_CANCELLED,
        task_pb2.TASK_STATE_TIMED_OUT,
    )


def status_fields(status: daemon_service_pb2.DaemonStatus) -> list[tuple[str, str]]:
    counts = ", ".join(f"{state_label(c.state)} {c.count}" for c in status.task_counts if c.count)
    return [
        ("version", status.version or "-"),
        ("pid", str(status.pid)),
        ("uptime", duration(status.uptime_seconds)),
        ("socket", status.socket_path or "-"),
        ("tcp", status.tcp_address or "off"),
        ("state dir", status.state_dir or "-"),
        ("config", status.config_path or "-"),
        ("log", status.log_path or "-"),
        ("runners", f"{status.runners_running}/{status.runners_total} running"),
        ("tasks", counts or "none"),
    ]


_RUNNER_STYLES: dict[int, str] = {
    runner_pb2.RUNNER_STATE_STARTING: "cyan",
    runner_pb2.RUNNER_STATE_BACKOFF: "yellow",
    runner_pb2.RUNNER_STATE_STOPPING: "yellow",
    runner_pb2.RUNNER_STATE_STOPPED: "dim",
    runner_pb2.RUNNER_STATE_EXITED: "dim",
    runner_pb2.RUNNER_STATE_FATAL: "red",
    runner_pb2.RUNNER_STATE_UNKNOWN: "red",
}


def runner_style(state: int) -> str | None:
    return _RUNNER_STYLES.get(state)


RUNNER_COLUMNS = ["ID", "STATE", "PID", "RESTARTS", "TASK", "CPU", "MEM", "UPTIME", "REASON"]


def runner_row(runner: runner_pb2.Runner, now: float) -> list[str]:
    return [
        runner.id,
        runner_state_label(runner.state),
        str(runner.pid) if runner.pid else "-",
        str(runner.restarts),
        runner.current_task_id or "-",
        f"{runner.cpu_percent:.0f}%" if runner.pid else "-",
        _bytes(runner.rss_bytes) if runner.rss_bytes else "-",
        since(runner.start_time, now) if runner.HasField("start_time") else "-",
        runner.reason,
    ]


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"


def event_line(event: event_pb2.Event) -> str | None:
    """One line for a non-log event (None for logs and text, which print as they are)."""
    kind = event.WhichOneof("payload")
    if kind is None or kind in ("log", "text_delta", "bookmark"):
        return None
    stamp = (
        datetime.fromtimestamp(event.time.seconds + event.time.nanos / 1e9, tz=UTC)
        .astimezone()
        .strftime("%H:%M:%S")
    )
    detail = _event_detail(event, kind)
    return f"[{stamp}] #{event.seq} {kind.replace('_', ' ')}" + (f": {detail}" if detail else "")


def _event_detail(event: event_pb2.Event, kind: str) -> str:
    if kind == "queued":
        return event.queued.reason
    if kind == "claimed":
        return f"by {event.claimed.runner_id}"
    if kind == "started":
        parts = [f"pid {event.started.pid}"] if event.started.pid else []
        if event.started.workspace_path:
            parts.append(f"in {event.started.workspace_path}")
        return " ".join(parts)
    if kind == "assistant_message":
        return excerpt(event.assistant_message.text, 100)
    if kind == "tool_call":
        return f"{event.tool_call.tool} {excerpt(event.tool_call.input_json, 80)}"
    if kind == "tool_result":
        r = event.tool_result
        return ("error: " if r.is_error else "") + excerpt(r.output, 80)
    if kind == "policy_decision":
        d = event.policy_decision
        return f"{event_pb2.Decision.Name(d.decision).removeprefix('DECISION_').lower()} ({d.rule})"
    if kind == "approval_requested":
        a = event.approval_requested
        return f"{a.approval_id}: {a.tool} {a.summary}"
    if kind == "approval_resolved":
        r2 = event.approval_resolved
        return f"{r2.approval_id} {'approved' if r2.approved else 'denied'} by {r2.resolved_by}"
    if kind == "usage":
        u = event.usage
        return f"{u.input_tokens} in, {u.output_tokens} out, ${u.cost_usd:.4f}"
    if kind == "skill_loaded":
        return event.skill_loaded.name
    if kind == "artifact":
        return f"{event.artifact.change} {event.artifact.path}"
    if kind == "retrying":
        return f"attempt {event.retrying.failed_attempt} failed: {event.retrying.reason}"
    if kind == "finished":
        f = event.finished
        parts = [state_label(f.state)]
        if f.result.has_exit_code:
            parts.append(f"exit code {f.result.exit_code}")
        if f.result.error:
            parts.append(f.result.error)
        return ", ".join(parts)
    if kind == "secret_required":
        return f"{event.secret_required.name} (needed by {event.secret_required.needed_by})"
    return ""
