"""The tools the policy knows, by family; a tool not named here is denied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

READ_ONLY_TOOLS = frozenset({"read_file", "list_dir", "glob", "grep", "load_skill"})
WRITE_TOOLS = frozenset({"write_file", "edit_file"})
KNOWN_TOOLS = READ_ONLY_TOOLS | WRITE_TOOLS | {"bash"}

# Claude Code's names, so a skill's `allowed-tools: Read, Edit, Bash(git:*)` means what it says.
TOOL_ALIASES = {"read": "read_file", "write": "write_file", "edit": "edit_file", "ls": "list_dir"}


def subject(tool: str, tool_input: Mapping[str, Any]) -> str | None:
    """What a non-bash rule's pattern is matched against: a path, a glob, a skill's name."""
    key = {"glob": "pattern", "load_skill": "name"}.get(tool, "path")
    value = tool_input.get(key)
    if value is None and tool in ("list_dir", "grep"):
        return "."  # these tools default to the workspace root
    return value if isinstance(value, str) else None
