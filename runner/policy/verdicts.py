"""What a policy decision is made of: the task's level, the verdict, and the rule behind it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Level(enum.Enum):
    """How much a task may do without asking (see `runner.policy.decide` for each level)."""

    STUDENT = "student"
    INTERN = "intern"
    SUPERVISED = "supervised"
    AUTONOMOUS = "autonomous"


class Verdict(enum.Enum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


# The strictest verdict wins when several parts of one call are judged.
_STRICTNESS = {Verdict.ALLOW: 0, Verdict.ASK: 1, Verdict.DENY: 2}


@dataclass(frozen=True)
class Decision:
    """A verdict and, for the user and the audit table, what decided it."""

    verdict: Verdict
    rule: str


def strictest(decisions: Iterable[Decision]) -> Decision | None:
    """The strictest decision; among equally strict ones the first, which is the earliest part."""
    best: Decision | None = None
    for decision in decisions:
        if best is None or _STRICTNESS[decision.verdict] > _STRICTNESS[best.verdict]:
            best = decision
    return best


def allow(rule: str) -> Decision:
    return Decision(Verdict.ALLOW, rule)


def ask(rule: str) -> Decision:
    return Decision(Verdict.ASK, rule)


def deny(rule: str) -> Decision:
    return Decision(Verdict.DENY, rule)
