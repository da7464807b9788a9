"""The agent loop in-process: the real SDK against the fake Messages API, the daemon's
calls played by a small fake (heartbeat, events, approvals)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from protos import event_pb2, task_pb2, worker_service_pb2
from runner.agent import loop
from runner.agent.errors import KEY_MISSING, KEY_REFUSED
from runner.client import Ack
from runner.command import Outcome
from tests.fake_anthropic import (
    FakeAnthropic,
    error_event,
    fake_anthropic,
    garbled,
    reply,
    result_text,
    status,
    text,
    tool_results,
    tool_use,
    truncated,
)
from tests.support import processes_with

S = task_pb2.TaskState
KEY = "sk-ant-test-" + "k" * 24
Answer = Callable[[str, str], event_pb2.ApprovalResolved]


class FakeCalls:
    """The daemon's side of a running task: stores events, answers approvals."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.events: list[event_pb2.Event] = []
        self.cancel = False
        self.approvals: list[dict[str, Any]] = []
        self._answer = answer

    async def heartbeat(
        self, task_id: str, attempt: int, wait: float
    ) -> worker_service_pb2.HeartbeatResponse:
        await asyncio.sleep(0.02)
        return worker_service_pb2.HeartbeatResponse(cancel_requested=self.cancel)

    async def publish(
        self, task_id: str, attempt: int, first_index: int, events: Sequence[event_pb2.Event]
    ) -> Ack:
        assert first_index == len(self.events) + 1
        self.events.extend(events)
        return Ack(len(self.events), self.cancel)

    async def request_approval(
        self,
        task_id: str,
        attempt: int,
        *,
        call_id: str,
        tool: str,
        summary: str,
        timeout_seconds: float,
        input_json: str,
        rule: str,
    ) -> event_pb2.ApprovalResolved:
        self.approvals.append(
            {"call_id": call_id, "tool": tool, "summary": summary, "timeout": timeout_seconds}
        )
        if self._answer is None:
            return event_pb2.ApprovalResolved(approved=False, resolved_by="timeout")
        return self._answer(tool, summary)

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("payload") == kind]

    def kinds(self) -> list[str]:
        return [e.WhichOneof("payload") or "" for e in self.events]


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


def agent_task(workspace: Path, prompt: str = "do the thing", **fields: Any) -> task_pb2.Task:
    limits = fields.pop("limits", {})
    fields.setdefault("model", "claude-sonnet-4-6")
    fields.setdefault("policy_level", task_pb2.POLICY_LEVEL_AUTONOMOUS)
    spec = task_pb2.AgentSpec(prompt=prompt, limits=task_pb2.AgentLimits(**limits), **fields)
    return task_pb2.Task(
        id="t-" + uuid.uuid4().hex[:12],
        spec=task_pb2.TaskSpec(agent=spec),
        workspace_path=str(workspace),
    )


async def run(
    api: FakeAnthropic,
    task: task_pb2.Task,
    calls: FakeCalls | None = None,
    *,
    key: str = KEY,
    base_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Outcome | None, FakeCalls]:
    calls = calls or FakeCalls()
    environ = {
        "PATH": "/usr/bin:/bin",
        "ANTHROPIC_BASE_URL": api.base_url if base_url is None else base_url,
        **(extra_env or {}),
    }
    if key:
        environ["ANTHROPIC_API_KEY"] = key
    outcome = await asyncio.wait_for(
        loop.run_agent(calls, task, 1, {}, heartbeat_wait=0.05, environ=environ, max_retries=2),
        30,
    )
    return outcome, calls


def ended(outcome: Outcome | None) -> tuple[int, task_pb2.TaskResult]:
    assert outcome is not None
    return outcome.state, outcome.result


async def test_a_text_reply_succeeds_with_its_summary_and_usage(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(reply(text("All done.", "All ", "done."), input_tokens=1000, output_tokens=200))
    outcome, calls = await run(api, agent_task(tmp_path, max_tokens=1234))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED, result.error
    assert result.summary == "All done."
    assert (result.input_tokens, result.output_tokens, result.turns) == (1000, 200, 1)
    # Sonnet: $3 in and $15 out per million tokens.
    assert result.cost_usd == pytest.approx(0.003 + 0.003)
    assert [d.text for d in calls.of("text_delta")] == ["All ", "done."]
    assert calls.kinds()[0] == "started"
    message = calls.of("assistant_message")[0]
    assert (message.text, message.stop_reason) == ("All done.", "end_turn")
    usage = calls.of("usage")[-1]
    assert (usage.input_tokens, usage.output_tokens, usage.turns) == (1000, 200, 1)
    assert usage.model == "claude-sonnet-4-6" and usage.cost_usd == pytest.approx(0.006)
    [request] = api.message_requests
    assert request.api_key == KEY
    body = request.body
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 1234
    assert body["stream"] is True
    assert str(tmp_path) in body["system"]
    assert {t["name"] for t in body["tools"]} >= {"bash", "read_file", "write_file", "edit_file"}
    assert body["messages"] == [{"role": "user", "content": "do the thing"}]


async def test_defaults_for_model_and_max_tokens(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply("ok"))
    outcome, _ = await run(api, agent_task(tmp_path, model=""))
    assert ended(outcome)[0] == S.TASK_STATE_SUCCEEDED
    body = api.message_requests[0].body
    assert (body["model"], body["max_tokens"]) == ("claude-sonnet-5-5", 4096)


async def test_a_missing_key_fails_before_any_request(api: FakeAnthropic, tmp_path: Path) -> None:
    outcome, _ = await run(api, agent_task(tmp_path), key="")
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and result.error == KEY_MISSING
    assert api.requests == []


async def test_tool_calls_run_in_order_and_return_in_one_message(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(
            text("Writing."),
            tool_use("write_file", {"path": "a.txt", "content": "one\n"}, "toolu_1"),
            tool_use("read_file", {"path": "a.txt"}, "toolu_2"),
            tool_use("read_file", {"path": "missing.txt"}, "toolu_3"),
        ),
        reply("Wrote a.txt."),
    )
    outcome, calls = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED, result.error
    assert result.summary == "Wrote a.txt." and result.turns == 2
    assert (tmp_path / "a.txt").read_text() == "one\n"
    second = api.message_requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert [b["type"] for b in second[1]["content"]] == ["text", "tool_use", "tool_use", "tool_use"]
    results = tool_results(api.message_requests[1])
    assert [r["tool_use_id"] for r in results] == ["toolu_1", "toolu_2", "toolu_3"]
    assert [bool(r.get("is_error")) for r in results] == [False, False, True]
    assert "one" in result_text(results[1])
    # Events: each call, its decision, its result; the artifact after the write.
    assert [c.call_id for c in calls.of("tool_call")] == ["toolu_1", "toolu_2", "toolu_3"]
    assert json.loads(calls.of("tool_call")[0].input_json)["path"] == "a.txt"
    assert [d.decision for d in calls.of("policy_decision")] == [event_pb2.DECISION_ALLOW] * 3
    assert [(r.call_id, r.is_error) for r in calls.of("tool_result")] == [
        ("toolu_1", False),
        ("toolu_2", False),
        ("toolu_3", True),
    ]
    [artifact] = calls.of("artifact")
    assert (artifact.path, artifact.change, artifact.size) == ("a.txt", "created", 4)
    assert calls.of("usage")[-1].turns == 2


async def test_a_deny_rule_returns_a_tool_error_and_the_run_goes_on(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(tool_use("bash", {"command": "rm -rf build"}, "toolu_rm")),
        reply("I could not remove it."),
    )
    task = agent_task(tmp_path, deny_rules=["bash(rm:*)"])
    outcome, calls = await run(api, task)
    state, _ = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED
    [decision] = calls.of("policy_decision")
    assert decision.decision == event_pb2.DECISION_DENY and "rm" in decision.rule
    [result] = tool_results(api.message_requests[1])
    assert result["is_error"] is True
    assert result_text(result).startswith("denied by policy: ")


async def test_a_bad_rule_fails_before_the_first_request(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    outcome, _ = await run(api, agent_task(tmp_path, deny_rules=["bash(unclosed"]))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and "bash(unclosed" in result.error
    assert api.requests == []


def answer(approved: bool, who: str = "alice", reason: str = "", always: bool = False) -> Answer:
    def give(tool: str, summary: str) -> event_pb2.ApprovalResolved:
        return event_pb2.ApprovalResolved(
            approval_id="a-1", approved=approved, resolved_by=who, reason=reason, always=always
        )

    return give


async def test_an_approved_call_runs_and_always_approves_it_again(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    command = "echo approved-run > out.txt"
    api.script(
        reply(tool_use("bash", {"command": command}, "toolu_1")),
        reply(tool_use("bash", {"command": command}, "toolu_2")),
        reply("done"),
    )
    calls = FakeCalls(answer(True, always=True))
    task = agent_task(
        tmp_path, policy_level=task_pb2.POLICY_LEVEL_INTERN, approval_timeout_seconds=7
    )
    outcome, calls = await run(api, task, calls)
    assert ended(outcome)[0] == S.TASK_STATE_SUCCEEDED
    # Asked once: "always" covers the same command after.
    assert len(calls.approvals) == 1
    assert calls.approvals[0]["summary"] == f"bash: {command}"
    assert calls.approvals[0]["timeout"] == 7
    assert [d.decision for d in calls.of("policy_decision")] == [
        event_pb2.DECISION_ASK,
        event_pb2.DECISION_ALLOW,
    ]
    assert (tmp_path / "out.txt").read_text() == "approved-run\n"


async def test_a_denied_call_is_a_tool_error_naming_who_and_why(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(
        reply(tool_use("write_file", {"path": "x.txt", "content": "x"}, "toolu_1")),
        reply(tool_use("write_file", {"path": "y.txt", "content": "y"}, "toolu_2")),
        reply("gave up"),
    )
    answers = iter([answer(False, "bob", "not that file"), answer(False, "timeout")])
    calls = FakeCalls(lambda tool, summary: next(answers)(tool, summary))
    task = agent_task(tmp_path, policy_level=task_pb2.POLICY_LEVEL_INTERN)
    outcome, calls = await run(api, task, calls)
    assert ended(outcome)[0] == S.TASK_STATE_SUCCEEDED
    first = tool_results(api.message_requests[1])[0]
    second = tool_results(api.message_requests[2])[0]
    assert first["is_error"] and result_text(first) == "denied by bob: not that file"
    assert second["is_error"] and result_text(second).startswith("denied by timeout")
    assert calls.approvals[0]["timeout"] == loop.DEFAULT_APPROVAL_TIMEOUT
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y.txt").exists()


async def test_tools_get_no_provider_key(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply(tool_use("bash", {"command": "env"}, "toolu_env")), reply("seen"))
    outcome, calls = await run(
        api,
        agent_task(tmp_path),
        extra_env={"STIGMER_RUNNER_TOKEN": "runner-secret", "VISIBLE": "yes"},
    )
    assert ended(outcome)[0] == S.TASK_STATE_SUCCEEDED
    output = result_text(tool_results(api.message_requests[1])[0])
    assert "VISIBLE=yes" in output
    assert KEY not in output and "ANTHROPIC_API_KEY" not in output
    assert "runner-secret" not in output
    assert KEY not in str(calls.events)


async def test_a_path_outside_the_workspace_is_refused(api: FakeAnthropic, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    api.script(
        reply(tool_use("write_file", {"path": "../escaped.txt", "content": "x"}, "toolu_1")),
        reply("ok"),
    )
    outcome, _ = await run(api, agent_task(workspace))
    assert ended(outcome)[0] == S.TASK_STATE_SUCCEEDED
    [result] = tool_results(api.message_requests[1])
    assert result["is_error"] and "outside the workspace" in result_text(result)
    assert not (tmp_path / "escaped.txt").exists()


async def test_max_tokens_continues_then_gives_up(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(
        reply("First half, ", stop_reason="max_tokens"),
        reply("second half.", stop_reason="end_turn"),
    )
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED and result.summary == "First half, second half."
    messages = api.message_requests[1].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "First half, "}],
    }
    assert messages[2]["role"] == "user" and "cut off" in json.dumps(messages[2])

    api.requests.clear()
    api.script(*[reply("more ", stop_reason="max_tokens") for _ in range(4)])
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and result.error.startswith("stopped at max_tokens")
    assert len(api.message_requests) == 4


async def test_pause_turn_resends(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply("Searching", stop_reason="pause_turn"), reply("Found it."))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED and result.summary == "SearchingFound it."
    messages = api.message_requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


async def test_a_refusal_fails_with_the_reason(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply("I can't help with that.", stop_reason="refusal"))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error == "the model refused: I can't help with that."


async def test_retryable_statuses_are_retried_by_the_sdk(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(status(429), status(529), reply("through"))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_SUCCEEDED and result.summary == "through"
    assert len(api.message_requests) == 3 and result.turns == 1


async def test_retries_spent_fail_with_the_status(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(status(529), status(529), status(529, "busy"))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error == "the API is overloaded (529) after 2 retries: busy"


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (401, "invalid x-api-key", KEY_REFUSED),
        (403, "no access to this model", "forbidden (403): no access to this model"),
        (400, "messages: bad", "the API rejected the request (400): messages: bad"),
    ],
)
async def test_fatal_statuses_fail_at_once_with_words_to_act_on(
    api: FakeAnthropic, tmp_path: Path, code: int, message: str, expected: str
) -> None:
    api.script(status(code, message))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and result.error == expected
    assert len(api.message_requests) == 1


async def test_the_key_is_never_in_an_error(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(status(400, f"bad header {KEY}"))
    outcome, calls = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and KEY not in result.error
    assert "[redacted]" in result.error and KEY not in str(calls.events)


async def test_an_unreachable_api_names_the_base_url(api: FakeAnthropic, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # discard: nothing listens
    outcome, _ = await run(api, agent_task(tmp_path), base_url=url)
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error.startswith("cannot reach the model API at http://127.0.0.1:9")


async def test_an_error_event_mid_stream_fails_with_it(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(error_event("overloaded_error", "Overloaded", partial="Start"))
    outcome, calls = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error == "the API reported an error mid-stream (overloaded_error): Overloaded"
    assert [d.text for d in calls.of("text_delta")] == ["Start"]


async def test_a_truncated_stream_fails(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(truncated("I will"))
    outcome, _ = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert "stream ended before the message was complete" in result.error
    assert result.turns == 1 and result.input_tokens > 0


async def test_a_garbled_stream_fails_with_what_broke(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(garbled("I will"))
    outcome, calls = await run(api, agent_task(tmp_path))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error.startswith(f"the model API's stream from {api.base_url}")
    assert "broke off" in result.error
    assert calls.of("usage")[-1].turns == 1


async def test_max_turns_ends_the_run(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(*[reply(tool_use("list_dir", {"path": "."})) for _ in range(3)])
    outcome, calls = await run(api, agent_task(tmp_path, limits={"max_turns": 2}))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED and result.error == "reached max_turns (2)"
    assert result.turns == 2 and len(api.message_requests) == 2
    # The last turn's tool calls are not run: nobody would read their results.
    assert len(calls.of("tool_call")) == 1


async def test_the_cost_limit_ends_the_run(api: FakeAnthropic, tmp_path: Path) -> None:
    # 1M input tokens of Sonnet: $3 a turn.
    turn = reply(tool_use("list_dir", {"path": "."}), input_tokens=1_000_000, output_tokens=0)
    api.script(turn, turn, turn)
    outcome, _ = await run(api, agent_task(tmp_path, limits={"max_cost_usd": 5.0}))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error == "reached max_cost_usd ($5): $6.0000 spent"
    assert result.cost_usd == pytest.approx(6.0) and result.turns == 2


async def test_the_token_limit_ends_the_run(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(*[reply(tool_use("list_dir", {"path": "."})) for _ in range(3)])
    outcome, _ = await run(api, agent_task(tmp_path, limits={"max_tokens": 150}))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_FAILED
    assert result.error == "reached max_total_tokens (150): 240 tokens used"


async def test_wall_time_ends_timed_out(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply("slow " * 50, delay=0.2))
    outcome, _ = await run(api, agent_task(tmp_path, limits={"max_wall_seconds": 0.5}))
    state, result = ended(outcome)
    assert state == S.TASK_STATE_TIMED_OUT
    assert result.error == "reached max_wall_seconds (0.5 s)"


async def test_cancel_stops_a_running_bash_and_its_group(
    api: FakeAnthropic, tmp_path: Path
) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 7000}.5"
    command = f"sleep {marker} & sleep {marker}; wait"
    api.script(reply(tool_use("bash", {"command": command}, "toolu_sleep")))
    calls = FakeCalls()
    job = asyncio.create_task(run(api, agent_task(tmp_path), calls))
    for _ in range(500):
        if len(processes_with("sleep", marker)) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(processes_with("sleep", marker)) == 2
    calls.cancel = True
    outcome, _ = await job
    state, result = ended(outcome)
    assert state == S.TASK_STATE_CANCELLED and result.turns == 1
    for _ in range(250):
        if not processes_with("sleep", marker):
            break
        await asyncio.sleep(0.02)
    assert not processes_with("sleep", marker)


async def test_cancel_stops_a_stream(api: FakeAnthropic, tmp_path: Path) -> None:
    api.script(reply(text("x", *["word "] * 200), delay=0.05))
    calls = FakeCalls()
    job = asyncio.create_task(run(api, agent_task(tmp_path), calls))
    for _ in range(500):
        if calls.of("text_delta"):
            break
        await asyncio.sleep(0.01)
    calls.cancel = True
    outcome, _ = await job
    assert ended(outcome)[0] == S.TASK_STATE_CANCELLED
