"""One attempt of an AGENT task: the model loop, its tools under the policy, limits, cancel.

Loaded on the first agent task only: the SDK takes most of a second to import,
and the runner must register with the daemon without that delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anthropic
from anthropic.types import MessageParam, ToolParam
from grpc import aio

from protos import event_pb2, task_pb2, worker_service_pb2
from runner.agent import errors, prices
from runner.agent.prompt import CONTINUE, always_rule, approval_summary, cut, system_prompt
from runner.agent.skills import OfferedSkills
from runner.attempt import Attempt, Stop
from runner.client import AgentCalls, describe
from runner.command import Outcome
from runner.errors import AttemptLost, DaemonUnavailable, Transient
from runner.heartbeat import keep_alive
from runner.launch import ENV_SECRET_NAMES, task_environment
from runner.policy import Level, RuleError, Rules, Verdict, decide, parse_rules
from runner.tools import TOOL_SPECS, Constraints, ToolError, ToolResult, Workspace, run_tool
from shared.redact import Redactor

log = logging.getLogger(__name__)

S = task_pb2.TaskState
P = task_pb2.PolicyLevel

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_APPROVAL_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 4
# The runner's own setting (never a task's): how often the SDK retries 429 and 5xx.
ENV_MAX_RETRIES = "STIGMER_AGENT_MAX_RETRIES"
# Variables the model's tools never get, whatever the daemon declared as secret.
PROVIDER_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# Continuations after a reply cut at max_tokens, before the task fails.
MAX_CONTINUATIONS = 3
# pause_turn resends in a row before the task fails.
MAX_RESENDS = 20
SUMMARY_CHARS = 2000
EVENT_OUTPUT_CHARS = 64 * 1024
REFUSAL_CHARS = 500

_LEVELS = {
    P.POLICY_LEVEL_STUDENT: Level.STUDENT,
    P.POLICY_LEVEL_INTERN: Level.INTERN,
    P.POLICY_LEVEL_SUPERVISED: Level.SUPERVISED,
    P.POLICY_LEVEL_AUTONOMOUS: Level.AUTONOMOUS,
}
_DECISIONS = {
    Verdict.ALLOW: event_pb2.DECISION_ALLOW,
    Verdict.ASK: event_pb2.DECISION_ASK,
    Verdict.DENY: event_pb2.DECISION_DENY,
}


class _Ended(Exception):
    """The conversation is over, with this state and error."""

    def __init__(self, state: task_pb2.TaskState.ValueType, error: str = "") -> None:
        super().__init__(error)
        self.state = state
        self.error = error


def _failed(error: str) -> _Ended:
    return _Ended(S.TASK_STATE_FAILED, error)


@dataclass
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    turns: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


async def run_agent(
    client: AgentCalls,
    task: task_pb2.Task,
    attempt: int,
    claim_env: Mapping[str, str],
    *,
    heartbeat_wait: float = 1.0,
    on_drain: Callable[[], None] = lambda: None,
    environ: Mapping[str, str] | None = None,
    max_retries: int | None = None,
    skills: Sequence[worker_service_pb2.SkillRef] = (),
) -> Outcome | None:
    """Runs the agent to its end and says how it ended.

    None means the attempt is no longer ours: drop it without completing.
    Raises DaemonUnavailable when its events could not be delivered.
    """
    env = os.environ if environ is None else environ
    spec = task.spec.agent
    key = env.get("ANTHROPIC_API_KEY", "")
    if not key:
        return _outcome(S.TASK_STATE_FAILED, errors.KEY_MISSING, _Totals())
    if not spec.prompt.strip():
        return _outcome(S.TASK_STATE_FAILED, "the agent task has an empty prompt", _Totals())
    try:
        rules = parse_rules(
            allow=list(spec.allow_rules), ask=list(spec.ask_rules), deny=list(spec.deny_rules)
        )
    except RuleError as exc:
        return _outcome(S.TASK_STATE_FAILED, f"bad policy rule: {exc}", _Totals())
    root = task.workspace_path
    if not root or not os.path.isabs(root):
        error = f"the daemon gave no absolute workspace path (got {root!r})"
        return _outcome(S.TASK_STATE_FAILED, error, _Totals())
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error = f"cannot create workspace {root}: {exc.strerror or exc}"
        return _outcome(S.TASK_STATE_FAILED, error, _Totals())

    tool_env = task_environment(env, claim_env, {})
    for name in PROVIDER_VARIABLES:
        tool_env.pop(name, None)
    c = spec.constraints
    constraints = Constraints(
        allowed_write_globs=tuple(c.allowed_write_globs),
        allowed_read_globs=tuple(c.allowed_read_globs),
        max_files_changed=c.max_files_changed,
        max_diff_bytes=c.max_diff_bytes,
    )
    workspace = Workspace(Path(root), constraints, tool_env)
    retries = _max_retries(env) if max_retries is None else max_retries
    api = anthropic.AsyncAnthropic(
        api_key=key, base_url=env.get("ANTHROPIC_BASE_URL") or None, max_retries=retries
    )
    # Every value this runner holds as a secret: the provider key, the keys the daemon
    # gave it, and the task's own (a skill's) secrets.
    held = [env.get(name, "") for name in env.get(ENV_SECRET_NAMES, "").split(",")]
    redactor = Redactor([key, *held, *claim_env.values()])
    run = _Run(
        client, task, attempt, api, key, retries, rules, workspace, OfferedSkills(skills), redactor
    )
    try:
        return await run.supervise(heartbeat_wait, on_drain)
    finally:
        await run.close()
        await api.close()


def _valid_rules(rules: Sequence[str], task_id: str) -> list[str]:
    valid = []
    for rule in rules:
        try:
            parse_rules(allow=[rule])
        except RuleError as exc:
            log.warning("task %s: ignoring a skill's allowed-tools rule: %s", task_id, exc)
            continue
        valid.append(rule)
    return valid


def _max_retries(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_MAX_RETRIES, "")
    try:
        return max(0, int(raw)) if raw else DEFAULT_MAX_RETRIES
    except ValueError:
        log.warning(
            "%s=%r is not a whole number; using %d", ENV_MAX_RETRIES, raw, DEFAULT_MAX_RETRIES
        )
        return DEFAULT_MAX_RETRIES


def _outcome(state: task_pb2.TaskState.ValueType, error: str, totals: _Totals) -> Outcome:
    return Outcome(
        state,
        task_pb2.TaskResult(
            error=error,
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
            cost_usd=totals.cost_usd,
            turns=totals.turns,
        ),
    )


class _Run(Attempt):
    """The moving parts of one running attempt."""

    def __init__(
        self,
        client: AgentCalls,
        task: task_pb2.Task,
        attempt: int,
        api: anthropic.AsyncAnthropic,
        key: str,
        retries: int,
        rules: Rules,
        workspace: Workspace,
        skills: OfferedSkills,
        redactor: Redactor,
    ) -> None:
        super().__init__(client, task.id, attempt)
        spec = task.spec.agent
        self._client = client
        self._task = task
        self._spec = spec
        self._attempt = attempt
        self._api = api
        self._key = key
        self._retries = retries
        self._rules = rules
        self._workspace = workspace
        self._level = _LEVELS.get(spec.policy_level, Level.SUPERVISED)
        self._model = spec.model or DEFAULT_MODEL
        self._max_tokens = spec.max_tokens or DEFAULT_MAX_TOKENS
        self._price = prices.price_for(self._model)
        self._skills = skills
        self._redactor = redactor
        # A skill's allowed-tools pre-approve within the level; they never lift a deny.
        self._pre_approved: list[str] = _valid_rules(skills.allowed_tools(), task.id)
        self._totals = _Totals()
        self._system = system_prompt(str(workspace.given_root)) + skills.prompt_section()
        self._work: asyncio.Task[Outcome] | None = None
        if self._price is None:
            log.warning(
                "task %s: no price known for model %s: its cost counts as 0",
                task.id,
                self._model,
            )

    # -- supervision ------------------------------------------------------

    async def supervise(
        self, heartbeat_wait: float, on_drain: Callable[[], None]
    ) -> Outcome | None:
        task = self._task
        log.info("task %s attempt %d: agent started (%s)", task.id, self._attempt, self._model)
        self._publisher.start()
        self._publish(
            event_pb2.Event(
                started=event_pb2.Started(pid=0, workspace_path=str(self._workspace.given_root))
            )
        )
        self._spawn_helper(
            keep_alive(
                self._client,
                task.id,
                self._attempt,
                heartbeat_wait,
                on_cancel=lambda: self._decide(Stop.CANCELLED),
                on_lost=lambda: self._decide(Stop.LOST),
                on_drain=on_drain,
            )
        )
        wall = self._spec.limits.max_wall_seconds
        if wall > 0:
            self._timer = asyncio.get_running_loop().call_later(wall, self._decide, Stop.TIMED_OUT)
        work = self._work = asyncio.create_task(self._converse())
        ends: list[asyncio.Future[Any]] = [work, self._stop]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            # Stops the stream, an approval wait or a tool (its process group dies).
            work.cancel()
            await asyncio.wait([work])
        stop = self._stop.result() if self._stop.done() else None
        if stop is Stop.LOST:
            return None
        if stop is Stop.UNAVAILABLE:
            raise DaemonUnavailable(f"events not delivered: {self._delivery_error}")
        outcome = self._result_of(work, stop)
        if outcome is None:
            return None
        try:
            await self._publisher.flush()
        except AttemptLost:
            return None
        return outcome

    def _result_of(self, work: asyncio.Task[Outcome], stop: Stop | None) -> Outcome | None:
        if not work.cancelled():
            exc = work.exception()
            if exc is None:
                return work.result()
            if isinstance(exc, AttemptLost):
                return None
            if isinstance(exc, DaemonUnavailable):
                raise exc
            log.error("task %s: the agent loop failed", self._task.id, exc_info=exc)
            return _outcome(
                S.TASK_STATE_FAILED, f"internal error in the agent loop: {exc!r}", self._totals
            )
        if stop is Stop.TIMED_OUT:
            wall = self._spec.limits.max_wall_seconds
            return _outcome(
                S.TASK_STATE_TIMED_OUT, f"reached max_wall_seconds ({wall:g} s)", self._totals
            )
        return _outcome(S.TASK_STATE_CANCELLED, "cancelled", self._totals)

    async def close(self) -> None:
        if self._work is not None and not self._work.done():
            self._work.cancel()
            await asyncio.wait([self._work])
        await self._end_helpers()

    def _publish(self, event: event_pb2.Event) -> None:
        self._publisher.publish(event)

    # -- the conversation -------------------------------------------------

    async def _converse(self) -> Outcome:
        try:
            summary = await self._conversation()
        except _Ended as end:
            return _outcome(end.state, errors.scrub(end.error, self._key), self._totals)
        outcome = _outcome(S.TASK_STATE_SUCCEEDED, "", self._totals)
        outcome.result.summary = summary
        return outcome

    async def _conversation(self) -> str:
        """Talks with the model until it ends its turn; returns its final text."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": self._spec.prompt}]
        answer: list[str] = []
        continuations = 0
        resends = 0
        while True:
            message = await self._request(messages)
            stop_reason = message.stop_reason
            text = "".join(b.text for b in message.content if b.type == "text")
            answer.append(text)
            if stop_reason in ("end_turn", "stop_sequence"):
                return cut("".join(answer).strip(), SUMMARY_CHARS)
            if stop_reason == "refusal":
                why = " ".join(text.split()) or "no reason given"
                raise _failed(f"the model refused: {cut(why, REFUSAL_CHARS)}")
            if stop_reason == "model_context_window_exceeded":
                raise _failed("the conversation no longer fits in the model's context window")
            if stop_reason not in ("tool_use", "max_tokens", "pause_turn"):
                raise _failed(f"the model stopped for an unexpected reason: {stop_reason}")
            self._check_limits()
            if stop_reason == "tool_use":
                continuations = resends = 0
                answer = []
                calls = [b for b in message.content if b.type == "tool_use"]
                if not calls:
                    raise _failed("the model stopped to use a tool but asked for none")
                messages.append({"role": "assistant", "content": _blocks(message.content)})
                results = [await self._call(call) for call in calls]
                messages.append({"role": "user", "content": results})
            elif stop_reason == "max_tokens":
                continuations += 1
                if continuations > MAX_CONTINUATIONS:
                    raise _failed(
                        f"stopped at max_tokens ({self._max_tokens} output tokens per request) "
                        f"{continuations} times in a row"
                    )
                # What was cut mid-way is dropped: a tool call's input may be incomplete.
                partial = [b for b in _blocks(message.content) if b["type"] == "text" and b["text"]]
                if partial:
                    messages.append({"role": "assistant", "content": partial})
                _add_user_text(messages, CONTINUE)
            else:  # pause_turn: the API paused a long turn; sending it back resumes it.
                resends += 1
                if resends > MAX_RESENDS:
                    raise _failed(f"the model paused its turn {resends} times in a row")
                messages.append({"role": "assistant", "content": _blocks(message.content)})

    def _check_limits(self) -> None:
        """Ends the run when a limit leaves no room for another request."""
        limits = self._spec.limits
        totals = self._totals
        if limits.max_turns and totals.turns >= limits.max_turns:
            raise _failed(f"reached max_turns ({limits.max_turns})")
        if limits.max_tokens and totals.tokens >= limits.max_tokens:
            raise _failed(
                f"reached max_total_tokens ({limits.max_tokens}): {totals.tokens} tokens used"
            )
        if limits.max_cost_usd and totals.cost_usd >= limits.max_cost_usd:
            raise _failed(
                f"reached max_cost_usd (${limits.max_cost_usd:g}): ${totals.cost_usd:.4f} spent"
            )

    async def _request(self, messages: list[dict[str, Any]]) -> anthropic.types.Message:
        """One streamed request; its text is published as it arrives."""
        self._totals.turns += 1
        publisher = self._publisher
        snapshot: anthropic.types.Message | None = None
        complete = False
        try:
            async with self._api.messages.stream(
                model=self._model,
                max_tokens=self._max_tokens,
                system=self._system,
                tools=cast("list[ToolParam]", TOOL_SPECS),
                messages=cast("list[MessageParam]", messages),
            ) as stream:
                try:
                    async for event in stream:
                        if event.type == "text":
                            if event.text:
                                self._publish(
                                    event_pb2.Event(text_delta=event_pb2.TextDelta(text=event.text))
                                )
                                if not publisher.has_room:
                                    await publisher.wait_room()
                        elif event.type == "message_stop":
                            complete = True
                finally:
                    with contextlib.suppress(AssertionError):
                        snapshot = stream.current_message_snapshot
                    if snapshot is not None:
                        self._count(snapshot)
        except anthropic.APIError as exc:
            if snapshot is not None:
                self._publish_usage(snapshot.model or self._model)
            raise _failed(
                errors.describe(
                    exc,
                    base_url=str(self._api.base_url),
                    model=self._model,
                    retries=self._retries,
                )
            ) from None
        except Exception as exc:
            # The connection broke mid-stream, or a compatible server sent what the SDK
            # cannot read (bad JSON, events out of order).
            log.warning("task %s: the stream failed", self._task.id, exc_info=True)
            if snapshot is not None:
                self._publish_usage(snapshot.model or self._model)
            detail = errors.scrub(" ".join(str(exc).split())[:500], self._key)
            raise _failed(
                f"the model API's stream from {self._api.base_url} broke off: "
                f"{type(exc).__name__}: {detail}"
            ) from None
        if snapshot is None:
            raise _failed("the model API's stream ended before the message started")
        text = "".join(b.text for b in snapshot.content if b.type == "text")
        stop_reason = snapshot.stop_reason or ""
        self._publish(
            event_pb2.Event(
                assistant_message=event_pb2.AssistantMessage(text=text, stop_reason=stop_reason)
            )
        )
        self._publish_usage(snapshot.model or self._model)
        if not complete or not snapshot.stop_reason:
            raise _failed(
                "the model API's stream ended before the message was complete "
                f"(no {'stop reason' if not snapshot.stop_reason else 'message_stop'})"
            )
        return snapshot

    def _count(self, message: anthropic.types.Message) -> None:
        usage = message.usage
        cache_write = usage.cache_creation_input_tokens or 0
        cache_read = usage.cache_read_input_tokens or 0
        input_tokens = (usage.input_tokens or 0) + cache_write + cache_read
        output_tokens = usage.output_tokens or 0
        totals = self._totals
        totals.input_tokens += input_tokens
        totals.output_tokens += output_tokens
        totals.cost_usd += prices.cost_usd(
            self._price, usage.input_tokens or 0, output_tokens, cache_write, cache_read
        )

    def _publish_usage(self, model: str) -> None:
        t = self._totals
        self._publish(
            event_pb2.Event(
                usage=event_pb2.Usage(
                    input_tokens=t.input_tokens,
                    output_tokens=t.output_tokens,
                    cost_usd=t.cost_usd,
                    turns=t.turns,
                    model=model,
                )
            )
        )

    # -- tool calls -------------------------------------------------------

    async def _call(self, call: anthropic.types.ToolUseBlock) -> dict[str, Any]:
        """Judges, maybe approves, and runs one tool call; returns its tool_result block."""
        tool_input: dict[str, Any] = call.input if isinstance(call.input, dict) else {}
        input_json = json.dumps(call.input, ensure_ascii=False)
        self._publish(
            event_pb2.Event(
                tool_call=event_pb2.ToolCall(call_id=call.id, tool=call.name, input_json=input_json)
            )
        )
        decision = decide(
            call.name,
            tool_input,
            self._level,
            self._rules,
            denylisted_commands=tuple(self._spec.constraints.denylisted_commands),
            pre_approved=tuple(self._pre_approved),
        )
        self._publish(
            event_pb2.Event(
                policy_decision=event_pb2.PolicyDecision(
                    call_id=call.id, decision=_DECISIONS[decision.verdict], rule=decision.rule
                )
            )
        )
        started = time.monotonic()
        if not isinstance(call.input, dict):
            result = ToolResult("the tool's input must be a JSON object", is_error=True)
        elif decision.verdict is Verdict.DENY:
            result = ToolResult(f"denied by policy: {decision.rule}", is_error=True)
        elif decision.verdict is Verdict.ASK:
            answer = await self._ask(call, tool_input, input_json, decision.rule)
            if answer.approved:
                if answer.always:
                    self._approve_always(call.name, tool_input)
                started = time.monotonic()
                result = await self._execute(call.name, tool_input)
            else:
                who = answer.resolved_by or "nobody"
                reason = answer.reason or "no reason given"
                result = ToolResult(f"denied by {who}: {reason}", is_error=True)
        else:
            result = await self._execute(call.name, tool_input)
        duration = time.monotonic() - started
        # What a tool printed goes to the model provider: no secret may ride along.
        output = self._redactor.text(result.output or "(no output)")
        event = event_pb2.ToolResult(
            call_id=call.id,
            is_error=result.is_error,
            output=cut(output, EVENT_OUTPUT_CHARS),
            duration_seconds=duration,
        )
        if result.exit_code is not None:
            event.exit_code = result.exit_code
        self._publish(event_pb2.Event(tool_result=event))
        for change in result.changes:
            self._publish(
                event_pb2.Event(
                    artifact=event_pb2.Artifact(
                        path=change.path, change=change.change, size=change.size
                    )
                )
            )
        if call.name == "load_skill" and not result.is_error:
            name = tool_input.get("name")
            if isinstance(name, str):
                loaded = event_pb2.SkillLoaded(name=name, source=self._skills.folder(name))
                self._publish(event_pb2.Event(skill_loaded=loaded))
        return {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": output,
            "is_error": result.is_error,
        }

    def _approve_always(self, tool: str, tool_input: dict[str, Any]) -> None:
        rule = always_rule(tool, tool_input, str(self._workspace.given_root))
        if rule is None:
            return
        try:
            parse_rules(allow=[rule])
        except RuleError as exc:
            log.info("task %s: no rule for an always-approval: %s", self._task.id, exc)
            return
        self._pre_approved.append(rule)

    async def _execute(self, tool: str, tool_input: dict[str, Any]) -> ToolResult:
        try:
            return await run_tool(tool, tool_input, self._workspace, self._skills)
        except ToolError as exc:
            return ToolResult(str(exc), is_error=True)
        except Exception as exc:
            log.exception("task %s: tool %s failed", self._task.id, tool)
            return ToolResult(f"the tool failed unexpectedly: {exc!r}", is_error=True)

    async def _ask(
        self,
        call: anthropic.types.ToolUseBlock,
        tool_input: dict[str, Any],
        input_json: str,
        rule: str,
    ) -> event_pb2.ApprovalResolved:
        """Asks the daemon's clients; a failed request is a denial the model is told of."""
        timeout = self._spec.approval_timeout_seconds or DEFAULT_APPROVAL_TIMEOUT
        try:
            # Watchers see the call and its decision before the request about it.
            await self._publisher.flush()
            return await self._client.request_approval(
                self._task.id,
                self._attempt,
                call_id=call.id,
                tool=call.name,
                summary=approval_summary(call.name, tool_input),
                timeout_seconds=timeout,
                input_json=input_json,
                rule=rule,
            )
        except Transient as exc:
            log.warning("task %s: approval request failed: %s", self._task.id, exc)
            reason = f"no answer from the daemon ({exc})"
        except aio.AioRpcError as exc:
            log.warning("task %s: approval request refused: %s", self._task.id, describe(exc))
            reason = f"the approval could not be asked ({describe(exc)})"
        return event_pb2.ApprovalResolved(approved=False, resolved_by="runner", reason=reason)


def _blocks(content: Sequence[Any]) -> list[dict[str, Any]]:
    """An assistant message's content as request blocks (only what the API accepts back)."""
    out: list[dict[str, Any]] = []
    for block in content:
        if block.type == "text":
            if block.text:
                out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        elif block.type == "thinking":
            out.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        elif block.type == "redacted_thinking":
            out.append({"type": "redacted_thinking", "data": block.data})
        else:
            dumped = block.model_dump(mode="json", exclude_none=True)
            dumped.pop("parsed_output", None)
            out.append(dumped)
    return out


def _add_user_text(messages: list[dict[str, Any]], text: str) -> None:
    """Adds a text to the conversation as the user, into the last user message if it is last."""
    last = messages[-1]
    if last["role"] != "user":
        messages.append({"role": "user", "content": text})
        return
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks.append({"type": "text", "text": text})
    last["content"] = blocks
