"""Agent tasks end to end: a real daemon and runner, the real SDK, the fake Messages API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos import event_pb2, task_pb2, task_service_pb2
from tests.fake_anthropic import (
    FakeAnthropic,
    error_event,
    fake_anthropic,
    reply,
    result_text,
    status,
    text,
    tool_results,
    tool_use,
    truncated,
)
from tests.support import Client, Daemon, processes_with, wait_until, write_config

S = task_pb2
KEY = "sk-ant-test-" + uuid.uuid4().hex
CONFIG = '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
KEY_REFUSED = (
    "the API refused the key (401): set a new one with `stigmer secrets set ANTHROPIC_API_KEY`"
)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


@pytest.fixture
async def client(daemon: Daemon, api: FakeAnthropic) -> AsyncIterator[Client]:
    write_config(daemon.home, CONFIG)
    daemon.extra_env = {"ANTHROPIC_BASE_URL": api.base_url}
    yield await daemon.start(stdin_secrets={"ANTHROPIC_API_KEY": KEY})
    # Nothing the daemon stored or logged holds the key.
    assert KEY not in daemon.log_text()


async def create_agent(
    client: Client, prompt: str, workspace: Path | None = None, **agent: Any
) -> task_pb2.Task:
    limits = agent.pop("limits", {})
    agent.setdefault("policy_level", S.POLICY_LEVEL_AUTONOMOUS)
    spec = task_pb2.TaskSpec(
        agent=task_pb2.AgentSpec(prompt=prompt, limits=task_pb2.AgentLimits(**limits), **agent),
        workspace=task_pb2.Workspace(path=str(workspace)) if workspace else None,
    )
    return await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec), metadata=client.md
    )


def of(events: list[event_pb2.Event], kind: str) -> list[Any]:
    return [getattr(e, kind) for e in events if e.WhichOneof("payload") == kind]


def finished(events: list[event_pb2.Event]) -> event_pb2.Finished:
    assert events[-1].WhichOneof("payload") == "finished"
    return events[-1].finished


async def run_to_end(client: Client, task: task_pb2.Task) -> list[event_pb2.Event]:
    events = await asyncio.wait_for(client.events(task.id), 60)
    assert KEY not in str(events)
    return events


async def test_a_multi_turn_tool_loop_edits_a_file(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(
            text("Writing the file.", "Writing ", "the file."),
            tool_use("write_file", {"path": "notes.txt", "content": "hello world\n"}, "toolu_w"),
            tool_use("read_file", {"path": "notes.txt"}, "toolu_r"),
        ),
        reply(
            tool_use(
                "edit_file",
                {"path": "notes.txt", "old_string": "world", "new_string": "there"},
                "toolu_e",
            )
        ),
        reply("notes.txt now says hello there."),
    )
    task = await create_agent(client, "write notes.txt", tmp_path)
    events = await run_to_end(client, task)
    end = finished(events)
    assert end.state == S.TASK_STATE_SUCCEEDED, end.result.error
    assert end.result.summary == "notes.txt now says hello there."
    assert end.result.turns == 3 and end.result.input_tokens == 300
    assert end.result.cost_usd > 0
    assert (tmp_path / "notes.txt").read_text() == "hello there\n"
    # What the daemon stored: the text as it streamed, each call and its result, the files.
    assert "".join(d.text for d in of(events, "text_delta")).startswith("Writing the file.")
    assert [c.tool for c in of(events, "tool_call")] == ["write_file", "read_file", "edit_file"]
    assert [r.call_id for r in of(events, "tool_result")] == ["toolu_w", "toolu_r", "toolu_e"]
    assert [(a.path, a.change) for a in of(events, "artifact")] == [
        ("notes.txt", "created"),
        ("notes.txt", "modified"),
    ]
    assert [m.stop_reason for m in of(events, "assistant_message")] == [
        "tool_use",
        "tool_use",
        "end_turn",
    ]
    assert of(events, "usage")[-1].turns == 3
    # The model got both results of the first turn in one user message, in order.
    requests = api.message_requests
    assert len(requests) == 3 and all(r.api_key == KEY for r in requests)
    first = tool_results(requests[1])
    assert [r["tool_use_id"] for r in first] == ["toolu_w", "toolu_r"]
    assert "hello world" in result_text(first[1])
    assert [r["tool_use_id"] for r in tool_results(requests[2])] == ["toolu_e"]


async def test_a_denied_call_goes_back_to_the_model_and_the_task_goes_on(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    api.script(
        reply(tool_use("bash", {"command": "rm -f keep.txt"}, "toolu_rm")),
        reply("I was not allowed to remove it."),
    )
    task = await create_agent(client, "clean up", tmp_path, deny_rules=["bash(rm:*)"])
    events = await run_to_end(client, task)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    [decision] = of(events, "policy_decision")
    assert decision.decision == event_pb2.DECISION_DENY
    [result] = tool_results(api.message_requests[1])
    assert result["is_error"] and result_text(result).startswith("denied by policy: ")
    assert (tmp_path / "keep.txt").read_text() == "precious"


async def test_429_then_529_then_success(client: Client, api: FakeAnthropic) -> None:
    api.script(status(429), status(529), reply("made it"))
    task = await create_agent(client, "hello")
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_SUCCEEDED and end.result.summary == "made it"
    assert len(api.message_requests) == 3


async def test_a_refused_key_fails_with_how_to_set_one(client: Client, api: FakeAnthropic) -> None:
    api.script(status(401, "invalid x-api-key"))
    task = await create_agent(client, "hello")
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_FAILED and end.result.error == KEY_REFUSED
    assert len(api.message_requests) == 1


async def test_an_error_event_mid_stream_fails_the_task(client: Client, api: FakeAnthropic) -> None:
    api.script(error_event("api_error", "Internal server error", partial="Let me"))
    task = await create_agent(client, "hello")
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_FAILED
    assert (
        end.result.error
        == "the API reported an error mid-stream (api_error): Internal server error"
    )


async def test_a_truncated_stream_fails_the_task(client: Client, api: FakeAnthropic) -> None:
    api.script(truncated("I will"))
    task = await create_agent(client, "hello")
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_FAILED
    assert "stream ended before the message was complete" in end.result.error


async def test_max_turns_ends_the_task(client: Client, api: FakeAnthropic) -> None:
    api.script(*[reply(tool_use("list_dir", {"path": "."})) for _ in range(3)])
    task = await create_agent(client, "look around", limits={"max_turns": 2})
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_FAILED and end.result.error == "reached max_turns (2)"
    assert end.result.turns == 2 and len(api.message_requests) == 2


async def test_the_cost_limit_ends_the_task(client: Client, api: FakeAnthropic) -> None:
    # Sonnet 4.6 input is $3 per million tokens: $1.50 a turn.
    turn = reply(tool_use("list_dir", {"path": "."}), input_tokens=500_000, output_tokens=0)
    api.script(turn, turn, turn)
    task = await create_agent(
        client, "look around", model="claude-sonnet-4-6", limits={"max_cost_usd": 2.0}
    )
    events = await run_to_end(client, task)
    end = finished(events)
    assert end.state == S.TASK_STATE_FAILED
    assert end.result.error == "reached max_cost_usd ($2): $3.0000 spent"
    assert end.result.cost_usd == pytest.approx(3.0)
    assert of(events, "usage")[-1].cost_usd == pytest.approx(3.0)


async def test_cancel_during_a_long_bash_call_kills_its_processes(
    client: Client, api: FakeAnthropic
) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    command = f"sleep {marker} & sleep {marker}; wait"
    api.script(reply(tool_use("bash", {"command": command, "timeout": 600}, "toolu_sleep")))
    task = await create_agent(client, "wait a while")
    await wait_until(lambda: len(processes_with("sleep", marker)) == 2, 30, "both sleeps")
    await client.tasks.CancelTask(
        task_service_pb2.CancelTaskRequest(task_id=task.id), metadata=client.md
    )
    end = finished(await run_to_end(client, task))
    assert end.state == S.TASK_STATE_CANCELLED
    await wait_until(lambda: not processes_with("sleep", marker), 10, "no sleep left")


async def test_a_path_escape_is_a_tool_error(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    api.script(
        reply(tool_use("write_file", {"path": "../escaped.txt", "content": "x"}, "toolu_1")),
        reply(tool_use("read_file", {"path": "/etc/hostname"}, "toolu_2")),
        reply("stayed inside"),
    )
    task = await create_agent(client, "escape", workspace)
    events = await run_to_end(client, task)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    for request in api.message_requests[1:]:
        [result] = tool_results(request)
        assert result["is_error"] and "outside the workspace" in result_text(result)
    assert not (tmp_path / "escaped.txt").exists()
    assert all(r.is_error for r in of(events, "tool_result"))


# -- approvals (the daemon's RequestApproval and ApproveAction) ---------------------


Answer = tuple[bool, str, bool] | None  # (approve, reason, always), or None to stay silent


async def run_answering(
    client: Client, task: task_pb2.Task, answer: Answer
) -> list[event_pb2.Event]:
    """Follows the task to its end, answering each approval request as `answer` says."""
    events: list[event_pb2.Event] = []

    async def follow() -> None:
        async for batch in client.tasks.WatchTask(
            task_service_pb2.WatchTaskRequest(task_id=task.id), metadata=client.md
        ):
            for event in batch.events:
                events.append(event)
                if event.WhichOneof("payload") == "approval_requested" and answer is not None:
                    approved, reason, always = answer
                    request = task_service_pb2.ApproveActionRequest(
                        task_id=task.id,
                        approval_id=event.approval_requested.approval_id,
                        approve=approved,
                        reason=reason,
                        answered_by="test:alice",
                        always=always,
                    )
                    await client.tasks.ApproveAction(request, metadata=client.md)

    await asyncio.wait_for(follow(), 60)
    return events


async def approval_run(
    client: Client, api: FakeAnthropic, workspace: Path, answer: Answer, **agent: Any
) -> tuple[list[event_pb2.Event], list[dict[str, Any]]]:
    api.script(
        reply(tool_use("bash", {"command": "echo approved > out.txt"}, "toolu_ask")),
        reply("finished"),
    )
    task = await create_agent(
        client, "write out.txt", workspace, policy_level=S.POLICY_LEVEL_INTERN, **agent
    )
    try:
        events = await run_answering(client, task, answer)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip(f"the daemon does not answer approvals yet: {exc.details()}")
        raise
    return events, tool_results(api.message_requests[1])


async def test_an_approved_call_runs(client: Client, api: FakeAnthropic, tmp_path: Path) -> None:
    events, [result] = await approval_run(client, api, tmp_path, (True, "", False))
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    [asked] = of(events, "approval_requested")
    assert asked.tool == "bash" and "echo approved > out.txt" in asked.summary
    [resolved] = of(events, "approval_resolved")
    assert resolved.approved and resolved.resolved_by == "test:alice"
    assert not result.get("is_error")
    assert (tmp_path / "out.txt").read_text() == "approved\n"


async def test_a_denied_call_tells_the_model_who_and_why(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    events, [result] = await approval_run(
        client, api, tmp_path, (False, "not in this folder", False)
    )
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    assert result["is_error"]
    assert result_text(result) == "denied by test:alice: not in this folder"
    assert not (tmp_path / "out.txt").exists()


async def test_an_unanswered_call_is_denied_after_the_timeout(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    events, [result] = await approval_run(client, api, tmp_path, None, approval_timeout_seconds=1.0)
    assert finished(events).state == S.TASK_STATE_SUCCEEDED
    assert result["is_error"] and result_text(result).startswith("denied by timeout")
    assert json.loads(of(events, "tool_call")[0].input_json)["command"].startswith("echo")
    assert not (tmp_path / "out.txt").exists()
