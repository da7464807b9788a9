"""The words of an agent run: its system prompt, approval summaries, cut texts."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

# Tools whose input names one file or folder in `path`.
PATH_TOOLS = frozenset({"read_file", "write_file", "edit_file", "list_dir"})

CONTINUE = (
    "Your last message was cut off at the output token limit. Continue exactly where it "
    "stopped, without repeating what you already wrote."
)


def system_prompt(workspace: str) -> str:
    return (
        f"You are an agent working in the workspace at {workspace} on the user's machine. "
        "Use the tools to read and change files and to run commands there: paths are relative "
        "to the workspace, and nothing outside it can be touched. Each tool call is checked "
        "against a policy; a call may be denied, by the policy or by the user. When one is, "
        "do not repeat it as it was: find another way, or say what you would need. "
        "Work step by step and check your changes. Be concise: no preamble, no restating of "
        "the task. When you are done, end with a short summary of what you did and found."
    )


def cut(text: str, limit: int) -> str:
    """At most `limit` characters: the head, and a note of what was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters cut)"


def approval_summary(tool: str, tool_input: Mapping[str, Any]) -> str:
    """One line saying what would run, for whoever is asked to approve it."""
    if tool == "bash" and isinstance(tool_input.get("command"), str):
        line = tool_input["command"]
    elif tool in PATH_TOOLS and isinstance(tool_input.get("path"), str):
        line = tool_input["path"]
        content = tool_input.get("content")
        if tool == "write_file" and isinstance(content, str):
            line += f" ({len(content.encode())} bytes)"
    else:
        line = json.dumps(dict(tool_input), ensure_ascii=False, sort_keys=True)
    flat = " ".join(line.split())
    if len(flat) > 300:
        flat = flat[:299] + "…"
    return f"{tool}: {flat}"


def always_rule(tool: str, tool_input: Mapping[str, Any], workspace: str) -> str | None:
    """A rule that allows exactly this call again (an approval given with "always"):
    the same command line for bash, the same path for a path tool."""
    if tool == "bash" and isinstance(tool_input.get("command"), str):
        return f"bash({tool_input['command']})"
    path = tool_input.get("path")
    if tool not in PATH_TOOLS or not isinstance(path, str):
        return None
    if os.path.isabs(path):
        relative = os.path.relpath(os.path.normpath(path), workspace)
        if relative.startswith(".."):
            return None
        path = relative
    # A path with glob characters would allow more than itself.
    if not path or any(c in path for c in "*?[]{}"):
        return None
    return f"{tool}({path})"
