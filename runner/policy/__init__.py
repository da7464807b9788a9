"""The governance policy: decides whether an agent's tool call runs, asks, or is denied.

Pure functions over a tool call, the task's level and its rules; no I/O. `decide` is the entry
point; `parse_rules` validates rules up front so a bad rule fails the task, not a tool call.
"""

from runner.policy.allowlist import DEFAULT_ALLOW_LIST
from runner.policy.builtin_deny import BUILTIN_DENY_LIST
from runner.policy.decide import decide
from runner.policy.rules import RuleError, Rules, parse_rules
from runner.policy.tools import READ_ONLY_TOOLS, WRITE_TOOLS
from runner.policy.verdicts import Decision, Level, Verdict

__all__ = [
    "BUILTIN_DENY_LIST",
    "DEFAULT_ALLOW_LIST",
    "READ_ONLY_TOOLS",
    "WRITE_TOOLS",
    "Decision",
    "Level",
    "RuleError",
    "Rules",
    "Verdict",
    "decide",
    "parse_rules",
]
