"""The one place that knows how event payloads are encoded: the store keeps each
payload as the bytes of its protobuf message, so what a runner sent is stored and
replayed exactly."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from daemon.model import Event, NewEvent, TaskResult, TaskState
from protos import event_pb2, runner_pb2, task_pb2
from shared.redact import Redactor

_PAYLOAD_TYPES: dict[str, type[Message]] = {
    f.name: f.message_type._concrete_class  # type: ignore[union-attr]
    for f in event_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
}
KINDS = frozenset(_PAYLOAD_TYPES)


def state_to_proto(state: TaskState) -> Any:
    return task_pb2.TaskState.Value(f"TASK_STATE_{state.value}")


def result_to_proto(result: TaskResult) -> task_pb2.TaskResult:
    return task_pb2.TaskResult(
        exit_code=result.exit_code or 0,
        has_exit_code=result.exit_code is not None,
        error=result.error,
        summary=result.summary,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cost_usd=result.cost_usd,
        turns=result.turns,
    )


def _new(kind: str, message: Message, now: float, runner_id: str = "") -> NewEvent:
    return NewEvent(kind=kind, payload=message.SerializeToString(), time=now, runner_id=runner_id)


def queued(reason: str, now: float) -> NewEvent:
    return _new("queued", event_pb2.Queued(reason=reason), now)


def claimed(runner_id: str, now: float) -> NewEvent:
    return _new("claimed", event_pb2.Claimed(runner_id=runner_id), now, runner_id)


def retrying(failed_attempt: int, reason: str, now: float) -> NewEvent:
    return _new("retrying", event_pb2.Retrying(failed_attempt=failed_attempt, reason=reason), now)


def finished(state: TaskState, result: TaskResult, now: float, runner_id: str = "") -> NewEvent:
    message = event_pb2.Finished(state=state_to_proto(state), result=result_to_proto(result))
    return _new("finished", message, now, runner_id)


def runner_state_changed(
    runner_id: str,
    from_state: str,
    to_state: str,
    pid: int,
    exit_code: int | None,
    reason: str,
    now: float,
) -> NewEvent:
    message = event_pb2.RunnerStateChanged(
        runner_id=runner_id,
        from_state=runner_pb2.RunnerState.Value(f"RUNNER_STATE_{from_state}"),
        to_state=runner_pb2.RunnerState.Value(f"RUNNER_STATE_{to_state}"),
        pid=pid,
        exit_code=exit_code or 0,
        reason=reason,
    )
    return _new("runner_state_changed", message, now, runner_id)


def secret_required(name: str, needed_by: str, deadline: float, now: float) -> NewEvent:
    message = event_pb2.SecretRequired(name=name, needed_by=needed_by)
    message.deadline.FromNanoseconds(int(deadline * 1e9))
    return _new("secret_required", message, now)


def scrub(message: Message, redactor: Redactor) -> None:
    """Redacts every text and bytes field of `message`, nested ones included."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if _repeated(field) else [value]
            for item in items:
                if isinstance(item, Message):
                    scrub(item, redactor)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if _repeated(field):
                value[:] = [redactor.text(v) for v in value]
            else:
                setattr(message, field.name, redactor.text(value))
        elif field.type == FieldDescriptor.TYPE_BYTES and not _repeated(field):
            setattr(message, field.name, redactor.data(value))


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def approval_requested(
    approval_id: str, call_id: str, tool: str, summary: str, deadline: float, now: float
) -> NewEvent:
    message = event_pb2.ApprovalRequested(
        approval_id=approval_id, call_id=call_id, tool=tool, summary=summary
    )
    message.deadline.FromNanoseconds(int(deadline * 1e9))
    return _new("approval_requested", message, now)


def approval_resolved(
    approval_id: str, approved: bool, resolved_by: str, reason: str, always: bool, now: float
) -> NewEvent:
    message = event_pb2.ApprovalResolved(
        approval_id=approval_id,
        approved=approved,
        resolved_by=resolved_by,
        reason=reason,
        always=always,
    )
    return _new("approval_resolved", message, now)


def skills_chosen(
    names: list[str], reason: str, tokens: int, budget: int, left_out: list[str], now: float
) -> NewEvent:
    message = event_pb2.SkillsChosen(
        names=names, reason=reason, tokens=tokens, budget=budget, left_out=left_out
    )
    return _new("skills_chosen", message, now)


def from_proto(event: event_pb2.Event, now: float, runner_id: str, redactor: Redactor) -> NewEvent:
    """A runner's event as the store keeps it, redacted. Raises ValueError for an
    event with no payload."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise ValueError("event has no payload")
    payload: Message = getattr(event, kind)
    scrub(payload, redactor)
    time = event.time.ToNanoseconds() / 1e9 if event.HasField("time") else now
    return NewEvent(kind=kind, payload=payload.SerializeToString(), time=time, runner_id=runner_id)


def to_proto(event: Event) -> event_pb2.Event:
    message = event_pb2.Event(
        task_id=event.task_id,
        seq=event.seq,
        attempt=event.attempt,
        cursor=event.cursor,
        runner_id=event.runner_id,
    )
    message.time.FromNanoseconds(int(event.time * 1e9))
    getattr(message, event.kind).MergeFromString(event.payload)
    return message
