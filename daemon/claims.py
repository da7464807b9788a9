"""What a claim needs besides the task: the secrets it must have, those its programs
get, and for an agent the skills it is offered (with the event that says so)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daemon import eventcodec
from daemon.model import NewEvent, Task
from daemon.skills import Registry, choose
from daemon.skills.sources import skill_sources
from shared.secretstore import PROVIDER_KEY
from shared.skillformat import SkillDoc


@dataclass(frozen=True)
class Plan:
    requires: tuple[str, ...]  # must all be set before the task may run
    env: tuple[str, ...]  # secrets its programs (or tools) get
    skills: tuple[SkillDoc, ...] = ()
    events: tuple[NewEvent, ...] = ()
    # Who needs a secret, for the `secret_required` event (default: the task).
    needed_by: dict[str, str] = field(default_factory=dict)

    def who_needs(self, secret: str) -> str:
        return self.needed_by.get(secret, "task")


class Planner:
    def __init__(self, config_dir: Path, clock: Callable[[], float]) -> None:
        self._config_dir = config_dir
        self._clock = clock

    def __call__(self, task: Task) -> Plan:
        agent = task.spec.agent
        if agent is None:
            return Plan(task.spec.requires, task.spec.secrets)
        # Scanned at each claim: skills are files a user edits between runs, and a
        # workspace brings its own.
        registry = Registry.scan(skill_sources(self._config_dir, task.spec.workspace_path))
        tags = agent.skill_domains
        choice = choose(registry, agent.skills, tags, tags, agent.skill_token_budget)
        secrets = tuple(dict.fromkeys(s for doc in choice.skills for s in doc.secrets))
        event = eventcodec.skills_chosen(
            [doc.name for doc in choice.skills],
            choice.reason,
            choice.tokens,
            choice.budget,
            list(choice.left_out),
            self._clock(),
        )
        needed_by = {PROVIDER_KEY: "provider"}
        for doc in choice.skills:
            for secret in doc.secrets:
                needed_by.setdefault(secret, f"skill {doc.name}")
        return Plan((*task.spec.requires, *secrets), secrets, choice.skills, (event,), needed_by)
