"""AgentSpec: checked and completed with the configured defaults on the way in,
and given back as stored."""

from __future__ import annotations

import math
import re

from daemon.config import AgentDefaults
from daemon.errors import InvalidArgument
from daemon.model import AgentConstraints, AgentLimits, AgentSpec
from protos import task_pb2
from shared.redact import Redactor, looks_like_key

MAX_PROMPT_CHARS = 200_000
_LEVELS = {
    task_pb2.POLICY_LEVEL_STUDENT: "student",
    task_pb2.POLICY_LEVEL_INTERN: "intern",
    task_pb2.POLICY_LEVEL_SUPERVISED: "supervised",
    task_pb2.POLICY_LEVEL_AUTONOMOUS: "autonomous",
}
_LEVEL_VALUES = {name: value for value, name in _LEVELS.items()}
# tool or tool(pattern); the runner judges the pattern itself.
_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\(.*\))?", re.DOTALL)
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/\-@]{0,127}")
_SKILL = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def _number(field: str, value: float, most: float, what: str) -> None:
    if math.isnan(value) or value < 0 or value > most:
        raise InvalidArgument(field, value, f"use {what} from 0 (the default) to {most:g}")


def _rules(field: str, rules: list[str]) -> tuple[str, ...]:
    for rule in rules:
        if not _RULE.fullmatch(rule.strip()):
            raise InvalidArgument(
                field, rule, "write rules as tool or tool(pattern), e.g. bash(git status:*)"
            )
    return tuple(r.strip() for r in rules)


def _globs(field: str, globs: list[str]) -> tuple[str, ...]:
    for glob in globs:
        if not glob or glob.startswith("/") or "\x00" in glob:
            raise InvalidArgument(field, glob, "use globs relative to the workspace, e.g. src/**")
    return tuple(globs)


def from_proto(
    message: task_pb2.AgentSpec, defaults: AgentDefaults, redactor: Redactor
) -> AgentSpec:
    prompt = message.prompt.strip()
    if not prompt:
        raise InvalidArgument("spec.agent.prompt", "", "say what the agent should do")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            "spec.agent.prompt", f"{len(prompt)} characters", f"keep it under {MAX_PROMPT_CHARS}"
        )
    if redactor.knows(prompt) or looks_like_key(prompt):
        raise InvalidArgument(
            "spec.agent.prompt",
            redactor.text(prompt)[:60],
            "it holds a secret; store it with `stigmer secrets set NAME` instead",
        )
    model = message.model or defaults.model
    if not _MODEL.fullmatch(model):
        raise InvalidArgument(
            "spec.agent.model", model, "use a model name such as claude-sonnet-5-5"
        )
    if message.policy_level and message.policy_level not in _LEVELS:
        raise InvalidArgument(
            "spec.agent.policy_level",
            message.policy_level,
            "use STUDENT, INTERN, SUPERVISED or AUTONOMOUS",
        )
    for i, name in enumerate(message.skills):
        if not _SKILL.fullmatch(name):
            raise InvalidArgument(
                f"spec.agent.skills[{i}]", name, "skill names are lowercase-hyphen"
            )
    limits = message.limits
    _number("spec.agent.limits.max_turns", limits.max_turns, 10_000, "turns")
    _number("spec.agent.limits.max_wall_seconds", limits.max_wall_seconds, 86400, "seconds")
    _number("spec.agent.limits.max_tokens", limits.max_tokens, 1e9, "tokens")
    _number("spec.agent.limits.max_cost_usd", limits.max_cost_usd, 100_000, "dollars")
    _number("spec.agent.max_tokens", message.max_tokens, 128_000, "output tokens per request")
    _number(
        "spec.agent.approval_timeout_seconds", message.approval_timeout_seconds, 86400, "seconds"
    )
    constraints = message.constraints
    return AgentSpec(
        prompt=prompt,
        model=model,
        policy_level=_LEVELS.get(message.policy_level, defaults.level),
        limits=AgentLimits(
            max_turns=limits.max_turns or defaults.max_turns,
            max_wall_seconds=limits.max_wall_seconds or defaults.max_wall_seconds,
            max_tokens=limits.max_tokens or defaults.max_total_tokens,
            max_cost_usd=limits.max_cost_usd or defaults.max_cost_usd,
        ),
        max_tokens=message.max_tokens or defaults.max_tokens,
        approval_timeout_seconds=message.approval_timeout_seconds
        or defaults.approval_timeout_seconds,
        skill_token_budget=message.skill_token_budget or defaults.skill_token_budget,
        skills=tuple(message.skills),
        skill_domains=tuple(message.skill_domains),
        # Configured rules come first; a task adds its own.
        allow_rules=defaults.allow_rules
        + _rules("spec.agent.allow_rules", list(message.allow_rules)),
        ask_rules=defaults.ask_rules + _rules("spec.agent.ask_rules", list(message.ask_rules)),
        deny_rules=defaults.deny_rules + _rules("spec.agent.deny_rules", list(message.deny_rules)),
        constraints=AgentConstraints(
            allowed_write_globs=_globs(
                "spec.agent.constraints.allowed_write_globs", list(constraints.allowed_write_globs)
            ),
            allowed_read_globs=_globs(
                "spec.agent.constraints.allowed_read_globs", list(constraints.allowed_read_globs)
            ),
            max_files_changed=constraints.max_files_changed,
            max_diff_bytes=constraints.max_diff_bytes,
            denylisted_commands=tuple(c for c in constraints.denylisted_commands if c.strip()),
        ),
    )


def to_proto(spec: AgentSpec) -> task_pb2.AgentSpec:
    return task_pb2.AgentSpec(
        prompt=spec.prompt,
        skills=spec.skills,
        skill_domains=spec.skill_domains,
        model=spec.model,
        policy_level=_LEVEL_VALUES[spec.policy_level],  # type: ignore[arg-type]
        limits=task_pb2.AgentLimits(
            max_turns=spec.limits.max_turns,
            max_wall_seconds=spec.limits.max_wall_seconds,
            max_tokens=spec.limits.max_tokens,
            max_cost_usd=spec.limits.max_cost_usd,
        ),
        allow_rules=spec.allow_rules,
        ask_rules=spec.ask_rules,
        deny_rules=spec.deny_rules,
        constraints=task_pb2.AgentConstraints(
            allowed_write_globs=spec.constraints.allowed_write_globs,
            allowed_read_globs=spec.constraints.allowed_read_globs,
            max_files_changed=spec.constraints.max_files_changed,
            max_diff_bytes=spec.constraints.max_diff_bytes,
            denylisted_commands=spec.constraints.denylisted_commands,
        ),
        max_tokens=spec.max_tokens,
        approval_timeout_seconds=spec.approval_timeout_seconds,
        skill_token_budget=spec.skill_token_budget,
    )
